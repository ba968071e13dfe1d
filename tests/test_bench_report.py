"""The bench's verdict on the automatic budget: the best fixed budget, the ratio, its
interval over prompts, and the MAT-1.00 check."""

import pytest

from benchmarks import report
from benchmarks.report import auto_against_fixed


def row(tokens_per_s: float, mat: float, seconds: list[float], tokens: int = 64) -> dict:
    return {
        "tokens_per_s": tokens_per_s,
        "mean_accepted_tokens": mat,
        "per_prompt": [{"new_tokens": tokens, "seconds": s} for s in seconds],
    }


def test_auto_is_compared_with_the_fastest_fixed_budget_with_an_interval_over_prompts():
    rows = {
        "pld@auto": row(20.0, 1.4, [3.2, 3.3, 3.2, 3.4]),
        "pld@8": row(21.0, 1.5, [3.1, 3.0, 3.0, 3.1]),
        "pld@32": row(18.0, 1.6, [3.5, 3.6, 3.6, 3.5]),
    }
    verdict = auto_against_fixed(rows, ["pld"])["pld"]
    assert verdict["best_fixed"] == "pld@8"
    assert verdict["auto_over_best_fixed"] == 20.0 / 21.0
    low, high = verdict["auto_over_best_fixed_interval"]
    point = (3.1 + 3.0 + 3.0 + 3.1) / (3.2 + 3.3 + 3.2 + 3.4)  # the per-prompt times' ratio
    assert low <= point <= high and high < 1.0  # slower on every prompt: beyond noise
    assert not verdict["settled_at_ar_while_a_budget_works"]


def test_the_table_shows_whether_auto_did_the_best_fixed_budgets_work():
    rows = {
        "tr@auto": {**row(20.0, 1.25, [3.2, 3.3]), "mean_verified": 4.38},
        "tr@8": {**row(20.2, 1.25, [3.1, 3.3]), "mean_verified": 4.38},
        "tr@16": {**row(17.0, 1.35, [3.7, 3.8]), "mean_verified": 9.9},
    }
    text = "\n".join(report.auto_lines(auto_against_fixed(rows, ["tr"])))
    assert "| `tr@8` | 20.20 | 1.25 | 4.38 / 4.38 | 0.990 |" in text
    no_counts = {name: {k: v for k, v in r.items() if k != "mean_verified"} for name, r in rows.items()}
    assert "| 1.25 | - | 0.990 |" in "\n".join(report.auto_lines(auto_against_fixed(no_counts, ["tr"])))


def test_auto_at_mat_one_is_flagged_where_a_fixed_budget_drafts_at_nearly_its_speed():
    rows = {
        "lookahead@auto": row(20.0, 1.01, [3.0, 3.0]),
        "lookahead@16": row(19.0, 1.19, [3.1, 3.2]),
    }
    verdict = auto_against_fixed(rows, ["lookahead"])["lookahead"]
    assert verdict["settled_at_ar_while_a_budget_works"] and verdict["working_fixed"] == ["lookahead@16"]


def test_the_fixed_budget_chosen_on_the_other_prompts_is_scored_on_the_prompt_it_never_saw():
    """Leave one out. pld@32 is fastest overall only thanks to prompt 3; without prompt 3 pld@8
    wins, and with prompt 3 among the others pld@32 does: so prompts 0-2 are scored at pld@32
    and prompt 3 at pld@8, the worse choice each time."""
    rows = {
        "pld@auto": row(256 / 12.0, 1.4, [3.0, 3.0, 3.0, 3.0]),
        "pld@8": row(256 / 12.5, 1.5, [2.9, 2.9, 2.9, 3.8]),
        "pld@32": row(256 / 11.9, 1.6, [3.3, 3.3, 3.3, 2.0]),
    }
    verdict = auto_against_fixed(rows, ["pld"])["pld"]
    assert verdict["best_fixed"] == "pld@32"
    assert verdict["held_out_budgets"] == ["pld@32"] * 3 + ["pld@8"]
    assert verdict["held_out_tokens_per_s"] == pytest.approx(256 / (3 * 3.3 + 3.8))
    assert verdict["auto_over_held_out"] == pytest.approx((256 / 12.0) / verdict["held_out_tokens_per_s"])
    low, high = verdict["auto_over_held_out_interval"]
    assert low <= (3 * 3.3 + 3.8) / 12.0 <= high


def test_a_forward_split_is_shown_beside_its_bound():
    machine = {
        "read_bytes_per_s": 32e9,
        "dtypes": {
            "auto": {
                "dtype": "bfloat16",
                "kernels": "packed-linear",
                "weight_bytes": 2**28,
                "peak_flops": 4e11,
                "sizes": [1, 16],
                "seconds": [0.030, 0.040],
                "lower_bound": [0.008, 0.010],
                "linear_weight_bytes": 2.4e8,
                "split": [
                    {
                        "tokens": 1,
                        "forward": 30.0,
                        "linear": 16.0,
                        "attention": 4.0,
                        "rest": 10.0,
                    },
                    {
                        "tokens": 16,
                        "forward": 40.0,
                        "linear": 20.0,
                        "attention": 6.0,
                        "rest": 14.0,
                    },
                ],
            }
        },
    }
    lines = report.machine_lines(machine)
    # 2.4e8 bytes in 16 ms: 15 GB/s; linear and attention 20 ms against an 8 ms bound: 2.5x.
    assert "| 1 | 30.0 | 16.0 | 4.0 | 10.0 | 15.0 | 2.5 |" in lines
    assert "| 16 | 40.0 | 20.0 | 6.0 | 14.0 | 12.0 | 2.6 |" in lines


def test_rounds_keep_each_prompts_fastest_answer_for_every_variant():
    """A burst that slows one answer is discarded: with two rounds the faster answer to each
    prompt is kept, whichever round it came in."""
    import time
    from types import SimpleNamespace

    from benchmarks.variants import Outcome, Variant, run_interleaved

    cpu = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    # Per round: two warm-up answers, then p1 and p2 (timed).
    delays = {"a": iter([0, 0, 0.03, 0.0, 0, 0, 0.0, 0.03]), "b": iter([0, 0, 0.0, 0.03, 0, 0, 0.03, 0.0])}

    def answer(name):
        def run(prompt_ids, max_new_tokens):
            time.sleep(next(delays[name]))
            return Outcome(tokens=list(prompt_ids))

        return run

    built = []

    def make_variants():
        built.append([Variant(name, cpu, answer(name)) for name in ("a", "b")])
        return built[-1]

    prompts = [("p1", [1, 2]), ("p2", [3])]
    outcomes, _ = run_interleaved(make_variants, prompts, 4, 2, rounds=2)
    assert len(built) == 2  # a fresh set each round: stateful drafters meet each prompt afresh
    for name in ("a", "b"):
        assert [run.tokens for run in outcomes[name]] == [[1, 2], [3]]
        assert all(run.seconds < 0.02 for run in outcomes[name])  # the slowed answer was dropped


def test_interleaved_order_changes_each_variants_neighbour_and_repeats_with_the_seed():
    """No variant always runs behind the same one (a rotation did that: each drafter's auto
    variant followed the previous drafter's widest budget on every prompt), and a seed
    repeats the order."""
    from types import SimpleNamespace

    from benchmarks.variants import Outcome, Variant, run_interleaved

    cpu = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    names = "abcdef"

    def order_of_answers(seed):
        calls = []

        def answer(name):
            def run(prompt_ids, max_new_tokens):
                if max_new_tokens == 4:  # timed answers, not the warm-up
                    calls.append(name)
                return Outcome(tokens=list(prompt_ids))

            return run

        prompts = [(f"p{i}", [i]) for i in range(8)]
        outcomes, _ = run_interleaved(
            lambda: [Variant(name, cpu, answer(name)) for name in names], prompts, 4, 2, seed=seed
        )
        assert all(len(outcomes[name]) == len(prompts) for name in names)
        return calls

    calls = order_of_answers(0)
    per_prompt = [calls[i : i + len(names)] for i in range(0, len(calls), len(names))]
    assert all(sorted(order) == list(names) for order in per_prompt)  # each answers every prompt once
    for name in names:
        behind = {order[order.index(name) - 1] for order in per_prompt if order.index(name) > 0}
        assert len(behind) > 1, f"{name} always ran behind {behind}"
    assert order_of_answers(0) == calls
    assert order_of_answers(1) != calls


def test_the_verification_ratio_is_shown_beside_the_ratio_of_its_bounds():
    """t(16) / t(1) <= 1.4 asks less than the hardware allows only while t(1) sits above its
    bound: the bounds' own ratio (16 tokens' arithmetic over one token's reads) is reported."""
    machine = {
        "auto": {
            "dtype": "bfloat16",
            "sizes": [1, 16],
            "seconds": [0.016, 0.024],
            "lower_bound": [0.0045, 0.0108],
        }
    }
    rows = {"ar": {"tokens_per_s": 50.0}, "generate": {"tokens_per_s": 20.0}}
    checks = {
        what: (value, met)
        for what, value, _, met in report.targets({"variants": rows, "machine": {"dtypes": machine}}, {})
    }
    assert checks["t(16) / t(1)"] == (pytest.approx(1.5), False)
    assert checks["t(16) / t(1) with both on their bounds"] == (pytest.approx(2.4), True)
    assert checks["t(1) / bandwidth bound"][0] == pytest.approx(0.016 / 0.0045)


def test_variants_of_one_group_answer_each_prompt_back_to_back():
    """Auto and its best fixed budget are re-timed as a pair: on every prompt one answers right
    after the other, in either order, while the pairs' order changes between prompts (variants
    that cannot decode step by step: ``generate``)."""
    from types import SimpleNamespace

    from benchmarks.variants import Outcome, Variant, run_interleaved

    cpu = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    calls = []

    def answer(name):
        def run(prompt_ids, max_new_tokens):
            if max_new_tokens == 4:
                calls.append(name)
            return Outcome(tokens=list(prompt_ids))

        return run

    groups = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "c1": "c", "c2": "c"}
    prompts = [(f"p{i}", [i]) for i in range(8)]
    run_interleaved(
        lambda: [Variant(name, cpu, answer(name), group=group) for name, group in groups.items()],
        prompts,
        4,
        2,
    )
    per_prompt = [calls[i : i + len(groups)] for i in range(0, len(calls), len(groups))]
    for order in per_prompt:
        assert sorted(order) == sorted(groups)
        assert all(groups[order[i]] == groups[order[i + 1]] for i in (0, 2, 4)), order
    assert len({tuple(groups[name] for name in order[::2]) for order in per_prompt}) > 1
    assert len({order.index("a1") < order.index("a2") for order in per_prompt}) == 2


def test_variants_of_a_group_that_decode_step_by_step_take_turns_and_keep_their_own_time():
    """Grouped engine variants answer in lockstep: one step each in turn (who goes first
    alternating), and each answer's seconds hold its own steps only."""
    import time
    from types import SimpleNamespace

    from benchmarks.variants import Outcome, Variant, run_interleaved

    cpu = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    turns = []

    def stepper(name, steps, pause):
        def steps_of(prompt_ids, max_new_tokens):
            for _ in range(steps):
                if max_new_tokens == 4:
                    turns.append(name)
                time.sleep(pause)
                yield
            return Outcome(tokens=list(prompt_ids))

        return steps_of

    def whole(prompt_ids, max_new_tokens):  # warming up only
        assert max_new_tokens == 2, "a variant that can step is not timed whole in a group"
        return Outcome(tokens=list(prompt_ids))

    outcomes, _ = run_interleaved(
        lambda: [
            Variant("fast", cpu, whole, group="g", steps=stepper("fast", 3, 0.01)),
            Variant("slow", cpu, whole, group="g", steps=stepper("slow", 5, 0.1)),
        ],
        [("p", [1])],
        4,
        2,
    )
    assert sorted(turns) == ["fast"] * 3 + ["slow"] * 5
    assert {turns[0], turns[1]} == {turns[2], turns[3]} == {"fast", "slow"}  # one step each a turn
    assert turns[1] == turns[2]  # the second of one turn goes first in the next
    # Its own 3 steps (0.03 s), not the other's 0.5 s as well: far apart, so a loaded machine's
    # late wake-ups (0.1 s over 5 sleeps seen during a bench) cannot blur them.
    assert 0.03 <= outcomes["fast"][0].seconds < 0.25
    assert 0.5 <= outcomes["slow"][0].seconds


def test_the_re_timed_pairs_give_a_ratio_per_drafter_and_for_ar_beside_itself():
    pairs = {
        "rounds": 3,
        "best_fixed": {"pld": "pld@8", "rest": "rest@paper=64"},
        "variants": {
            "ar": row(50.0, 1.0, [1.30, 1.25]),
            report.AA_COPY: row(49.0, 1.0, [1.32, 1.27]),
            "pld@auto": row(60.0, 1.3, [1.05, 1.08]) | {"budgets": {0: 20, 8: 30}},
            "pld@8": row(58.0, 1.3, [1.10, 1.11]) | {"budgets": {8: 50}},
        },
    }
    verdicts = report.paired_verdicts(pairs)
    assert set(verdicts) == {report.AA_COPY, "pld"}  # rest's pair is missing: no row
    assert verdicts["pld"]["ratio"] == pytest.approx(60.0 / 58.0)
    low, high = verdicts["pld"]["interval"]
    assert 1.0 < low <= high  # faster on both prompts
    assert verdicts[report.AA_COPY]["ratio"] == pytest.approx(50.0 / 49.0)
    assert verdicts["pld"]["same_budgets"] is False and verdicts[report.AA_COPY]["same_budgets"] is None
    assert report.same_budgets({"budgets": {8: 50}}, {"budgets": {8: 50}}) is True
    text = "\n".join(report.pair_lines(pairs, verdicts))
    assert "| `pld@auto` | 60.00 | `pld@8` | 58.00 | 1.034 |" in text
    assert "| `ar` | 50.00 | `ar#2` | 49.00 | 1.020 |" in text
    assert text.count("| no |") == 1 and text.count("| - |") == 1  # pld's budgets differ; AR keeps none
    auto = {
        "pld": {"auto_over_best_fixed": 0.99, "auto_mat": 1.3, "settled_at_ar_while_a_budget_works": False}
    }
    machine = {"auto": {"dtype": "float32", "sizes": [1], "seconds": [0.02], "lower_bound": [0.01]}}
    rows = {"ar": {"tokens_per_s": 50.0}, "generate": {"tokens_per_s": 20.0}}
    checks = {
        what: (value, met)
        for what, value, _, met in report.targets(
            {"variants": rows, "machine": {"dtypes": machine}}, auto, verdicts
        )
    }
    assert checks["`pld`: auto / best fixed"] == (0.99, False)
    assert checks["`pld`: auto / best fixed, re-timed in pairs"] == (pytest.approx(60.0 / 58.0), True)
    assert checks["`pld`: auto / best fixed, re-timed in pairs, upper end of its 95% interval"] == (
        high,
        True,
    )
    assert checks["AR / AR again, identical work re-timed in pairs"][0] == pytest.approx(50.0 / 49.0)

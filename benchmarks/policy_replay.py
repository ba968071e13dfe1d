"""The automatic budget's decisions replayed without a clock: ``make bench``'s prompts decoded
in fp32 at ``auto`` and at fixed budgets, every step priced by a cost curve instead of timed.

    python -m benchmarks.policy_replay --curve benchmarks/amd-epyc-2t/<run>.json \\
        [--drafters pld,rest] [--budgets 1,2,3,4,8] [--out DIR] [overrides]

Why: ``make bench`` times the policy in the fastest dtype, and there, two things besides the
policy move its ratio to the best fixed budget. A shared CPU's noise (AR against a copy of
itself: 0.99-1.00 in pairs), and, in bf16, each budget's own greedy text: a forward of more
tokens rounds differently, near-ties flip, and on the AVX-512 EPYC PLD's answer to the RAG
prompt took 54 steps at ``auto`` and 49 at a fixed 3 (5 of 6 answers differed between some two
budgets). In fp32 every budget decodes AR's text, so two variants differ only by what the
policy chose; priced by one curve (the cached one, or any bench run's, from another CPU or a
GPU), they differ only by what those choices cost on that machine. Deterministic: a change to
the policy shows its effect on several machines' curves in a minute or two per drafter, and
the same command gives the same numbers.

What it cannot show: time the curve does not hold (drafting, the policy's own bookkeeping)
and the bf16 text lottery itself; ``make bench`` measures both.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from benchmarks.engine_vs_generate import fresh_drafter, pick_prompts, question_file
from benchmarks.variants import engine_variant
from spec_bench.commands import compose_config
from spec_bench.engine.auto_budget import auto_budget, configured_curve
from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.cost import LatencyCurve
from spec_bench.errors import HarnessError
from spec_bench.models import load_target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.policy_replay",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--curve",
        type=Path,
        help="a bench run's JSON (machine.dtypes.<--curve-dtype>); default: this machine's cached curve",
    )
    parser.add_argument("--curve-dtype", default="auto", help="which of the run's curves (default: auto)")
    parser.add_argument("--drafters", default="pld,rest,suffix,token_recycling,suffix_tr")
    parser.add_argument("--budgets", default="1,2,3,4,8,16", help="fixed budgets beside auto")
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, help="write replay.md and replay.json here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (model.dtype=float32 is added)")
    return parser.parse_args(argv)


def read_curve(path: Path, dtype_key: str) -> LatencyCurve:
    """The cost curve a bench run measured (``machine.dtypes.<dtype_key>``)."""
    try:
        section = json.loads(path.read_text())["machine"]["dtypes"][dtype_key]
        return LatencyCurve(list(section["sizes"]), list(section["seconds"]))
    except FileNotFoundError:
        raise HarnessError(f"no bench run at {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise HarnessError(f"{path} holds no cost curve machine.dtypes.{dtype_key} ({error})") from None


def replay(variant, prompts, curve: LatencyCurve, max_new_tokens: int) -> dict:
    """Decode every prompt; tokens, steps and the curve's price of every step (the prefill
    priced as one token, alike for every variant), with the budgets chosen."""
    tokens = steps = 0
    seconds = 0.0
    budgets: Counter[int] = Counter()
    answers = []
    for _, ids in prompts:
        outcome = variant(ids, max_new_tokens)
        tokens += len(outcome.tokens)
        steps += outcome.steps
        seconds += sum(curve.latency(1 + proposed) for proposed in outcome.proposed)
        budgets.update(outcome.budgets[1:])  # the prefill verifies nothing
        answers.append(list(outcome.tokens))
    return {
        "tokens": tokens,
        "steps": steps,
        "mat": tokens / steps,
        "curve_seconds": seconds,
        "tokens_per_curve_second": tokens / seconds,
        "budgets": dict(sorted(budgets.items())),
        "answers": answers,
    }


def replay_drafter(cfg, target, name: str, curve: LatencyCurve, budgets: list[int], prompts, new_tokens: int):
    """``name`` at auto and at each fixed budget; each variant a fresh drafter (some keep state)."""
    drafter = fresh_drafter(cfg, name, target)
    policies = {"auto": auto_budget(cfg, target, drafter, curve)}
    policies.update({str(budget): FixedBudget(budget) for budget in budgets})
    rows = {}
    for label, policy in policies.items():
        chosen = drafter if label == "auto" else fresh_drafter(cfg, name, target)
        rows[label] = replay(
            engine_variant(f"{name}@{label}", target, chosen, policy), prompts, curve, new_tokens
        )
    return rows


HEADER = [
    "| drafter | variant | MAT | steps | tokens per curve-second | × best fixed | text as the first"
    " fixed budget's | budgets chosen |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
]


def table_rows(name: str, rows: dict) -> list[str]:
    """Markdown rows for one drafter: per variant, MAT, steps, tokens per curve-second, and
    its ratio to the best fixed budget (auto's is the verdict)."""
    fixed = [row for label, row in rows.items() if label != "auto"]
    best = max((row["tokens_per_curve_second"] for row in fixed), default=None)
    reference = fixed[0]["answers"] if fixed else rows["auto"]["answers"]
    lines = []
    for label, row in rows.items():
        ratio = f"{row['tokens_per_curve_second'] / best:.3f}" if best else ""
        same = "yes" if row["answers"] == reference else "**no**"
        chosen = ", ".join(f"{b}: {n}" for b, n in row["budgets"].items()) if label == "auto" else ""
        lines.append(
            f"| `{name}` | {label} | {row['mat']:.3f} | {row['steps']} | "
            f"{row['tokens_per_curve_second']:.2f} | {ratio} | {same} | {chosen} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cfg = compose_config(["model.dtype=float32", *args.overrides])  # fp32: one text for every budget
    target = load_target(cfg.model, cfg.cache_dir)
    # Without --curve, this machine's, as ``auto`` reads it (fp32 here).
    curve = read_curve(args.curve, args.curve_dtype) if args.curve else configured_curve(cfg, target)
    prompts = pick_prompts(target, question_file(), args.prompts)
    budgets = [int(b) for b in args.budgets.split(",") if b]
    results, lines = {}, list(HEADER)
    print("\n".join(HEADER), flush=True)
    for name in (n for n in args.drafters.split(",") if n):
        results[name] = replay_drafter(cfg, target, name, curve, budgets, prompts, args.max_new_tokens)
        rows = table_rows(name, results[name])
        lines += rows
        print("\n".join(rows), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        source = args.curve or "this machine's cached curve"
        header = [f"# Policy replay: fp32 texts priced by {source}", "", f"`{' '.join(argv)}`", ""]
        (args.out / "replay.md").write_text("\n".join(header + lines) + "\n")
        for rows in results.values():
            for row in rows.values():
                row.pop("answers")
        curve_json = {"sizes": list(curve.sizes), "seconds": list(curve.seconds)}
        (args.out / "replay.json").write_text(json.dumps({"curve": curve_json, "results": results}, indent=1))


if __name__ == "__main__":
    main()

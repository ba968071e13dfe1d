"""benchmarks.policy_replay: fp32 decoding at auto and fixed budgets, every step priced by a given
cost curve, so that variants differ only by the budgets the policy chose."""

import json

import pytest

from benchmarks import policy_replay
from benchmarks.engine_vs_generate import pick_prompts
from spec_bench.engine.cost import LatencyCurve
from spec_bench.errors import HarnessError

# Another machine's prices: a forward of 2-4 tokens 4% above one token, wider ones dearer.
CURVE = LatencyCurve([1, 2, 4, 5, 9, 17], [0.0144, 0.0149, 0.0154, 0.0161, 0.0196, 0.0282])


def test_auto_and_a_fixed_budget_decode_one_text_priced_by_the_given_curve(target, make_cfg, data_dir):
    cfg = make_cfg()
    prompts = pick_prompts(target, data_dir / "spec_bench" / "question.jsonl", 3)
    rows = policy_replay.replay_drafter(cfg, target, "pld", CURVE, [3], prompts, new_tokens=24)

    assert set(rows) == {"auto", "3"}
    fixed, auto = rows["3"], rows["auto"]
    # PLD drafted and was accepted at the fixed budget, so equal texts say something.
    assert fixed["mat"] > 1.0 and fixed["steps"] < fixed["tokens"]
    assert auto["answers"] == fixed["answers"]  # fp32: what a budget verifies never changes the text
    # Every step is priced by the curve given, not timed: at least a one-token forward each.
    assert fixed["curve_seconds"] >= fixed["steps"] * CURVE.latency(1)
    assert fixed["tokens_per_curve_second"] == pytest.approx(fixed["tokens"] / fixed["curve_seconds"])
    assert fixed["budgets"].keys() <= {0, 1, 2, 3}  # 3, cut near the token limit
    assert sum(auto["budgets"].values()) == auto["steps"] - len(prompts)  # every step but the prefills

    lines = policy_replay.table_rows("pld", rows)
    assert len(lines) == 2 and all(line.startswith("| `pld` |") for line in lines)
    assert "| 1.000 |" in lines[1]  # the one fixed budget is the best


def test_a_bench_run_without_a_curve_is_one_clear_error(tmp_path):
    missing = tmp_path / "none.json"
    with pytest.raises(HarnessError, match="no bench run at"):
        policy_replay.read_curve(missing, "auto")
    broken = tmp_path / "run.json"
    broken.write_text(json.dumps({"machine": {"dtypes": {"fp32": {}}}}))
    with pytest.raises(HarnessError, match=r"no cost curve machine\.dtypes\.auto"):
        policy_replay.read_curve(broken, "auto")
    broken.write_text(json.dumps({"machine": {"dtypes": {"auto": {"sizes": [1, 2], "seconds": [0.1, 0.2]}}}}))
    assert policy_replay.read_curve(broken, "auto").latency(2) == 0.2

"""End-to-end runs on the embedded model: output contract, losslessness, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from spec_bench.data import CATEGORIES
from spec_bench.errors import HarnessError
from spec_bench.records import read_records
from spec_bench.report import write_summary
from spec_bench.runner import Runner, run_dir

from .conftest import REPO, SMOKE


def test_greedy_pld_equals_ar_on_every_category(smoke_runs):
    _, folders = smoke_runs
    ar = {r["question_id"]: r for r in read_records(folders["ar"] / "answers.jsonl")}
    pld = {r["question_id"]: r for r in read_records(folders["pld"] / "answers.jsonl")}
    assert sorted({r["category"] for r in pld.values()}) == sorted(CATEGORIES)
    assert ar.keys() == pld.keys()
    # PLD drafted and was accepted at its published budget, or equality would prove nothing.
    turns = [turn for record in pld.values() for turn in record["turns"]]
    assert sum(turn["accepted_by_source"].get("pld", 0) for turn in turns) > 0
    budgets = [budget for turn in turns for budget in turn["budgets"][1:]]
    assert max(budgets) == 10 and budgets.count(10) > len(budgets) / 2  # cut only near the token limit
    for question_id, record in pld.items():
        assert record["ar_match"] is True
        assert [t["token_ids"] for t in record["turns"]] == [t["token_ids"] for t in ar[question_id]["turns"]]
    mt_bench = next(r for r in pld.values() if r["category"] == "mt_bench")
    assert len(mt_bench["turns"]) == 2


def test_output_contract(smoke_runs):
    out, folders = smoke_runs
    folder = folders["pld"]
    assert folder == out / "smoke" / "smollm2_135m" / "pld" / "t0"
    assert (folder / "config.yaml").exists() and (folder / "environment.json").exists()
    record = read_records(folder / "answers.jsonl")[0]
    for key in (
        "question_id",
        "category",
        "new_tokens",
        "wall_time_s",
        "steps",
        "accept_lengths",
        "ar_match",
    ):
        assert key in record
    turn = record["turns"][0]
    assert turn["new_tokens"] == len(turn["token_ids"]) and turn["text"]
    assert sum(turn["accept_lengths"]) == turn["new_tokens"] and turn["steps"] == len(turn["accept_lengths"])
    assert set(turn["phase_times"]) == {"prefill", "draft", "forward", "accept", "bookkeeping"}
    assert sum(turn["phase_times"].values()) <= turn["wall_time_s"] * 1.01


def test_report_summary(smoke_runs):
    out, _ = smoke_runs
    path = write_summary(out / "smoke" / "smollm2_135m")
    summary = pd.read_csv(path)
    from spec_bench.metrics import SUMMARY_COLUMNS

    assert list(summary.columns) == SUMMARY_COLUMNS
    for column in ("speedup_lo", "speedup_hi", "mat_lo", "mat_hi", "near_tie_rate", "defect_rate"):
        assert column in SUMMARY_COLUMNS
    overall = summary[(summary.drafter == "pld") & (summary.category == "overall")].iloc[0]
    assert overall.n_questions == 6 and overall.ar_match_rate == 1.0
    assert (overall.method, overall.budget) == ("pld", "paper")
    # The numbers are the records' own, recomputed here as Spec-Bench's speed.py does.
    records = {name: read_records(folder / "answers.jsonl") for name, folder in smoke_runs[1].items()}

    def tokens_per_s(rows: list[dict]) -> float:
        return sum(r["new_tokens"] / r["wall_time_s"] for r in rows) / len(rows)

    lengths = [n for r in records["pld"] for n in r["accept_lengths"]]
    assert overall.mat == pytest.approx(sum(lengths) / len(lengths), abs=1e-4) and overall.mat > 1.0
    # bench=smoke times AR beside each question (paired): the speedup's denominator is AR's
    # speed on those same questions, decoded a moment apart, not the AR run's.
    assert overall.timing == "paired"
    paired_ar = [record["paired_ar"] for record in records["pld"]]
    assert {pair["order"] for pair in paired_ar} == {"before", "after"}
    expected = tokens_per_s(records["pld"]) / tokens_per_s(paired_ar)
    assert overall.speedup == pytest.approx(expected, rel=1e-3)
    assert overall.speedup_lo <= overall.speedup <= overall.speedup_hi
    assert overall.mat_lo <= overall.mat <= overall.mat_hi


def test_resume_skips_finished_questions(smoke_runs, target, make_cfg):
    out, folders = smoke_runs
    answers = folders["ar"] / "answers.jsonl"
    lines = answers.read_bytes().splitlines(keepends=True)
    # Simulate a kill mid-write: drop the last two records, leave a torn line.
    answers.write_bytes(b"".join(lines[:-2]) + lines[-2][:25])
    from .conftest import CACHE_DIR, compose_config

    cfg = compose_config(
        "drafter=ar", f"out_dir={out}", f"cache_dir={CACHE_DIR}", f"data_dir={make_cfg().data_dir}", *SMOKE
    )
    Runner(cfg, target=target).run()
    records = read_records(answers)
    assert [r["question_id"] for r in records] == [json.loads(line)["question_id"] for line in lines]


def test_changed_config_is_refused(smoke_runs, target, data_dir):
    from .conftest import CACHE_DIR, compose_config

    out, _ = smoke_runs
    cfg = compose_config(
        "drafter=pld",
        "drafter.sources.pld.max_ngram=2",
        f"out_dir={out}",
        f"data_dir={data_dir}",
        f"cache_dir={CACHE_DIR}",
        *SMOKE,
    )
    with pytest.raises(HarnessError, match="different config"):
        Runner(cfg, target=target).run()


def run_cli(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), f"out_dir={tmp_path / 'runs'}", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (("drafter=nope",), "unknown drafter 'nope'"),
        (("model=gpt5",), "unknown model 'gpt5'"),
    ],
)
def test_unknown_choices_fail_in_one_line(args, message, tmp_path):
    result = run_cli(*args, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_question_files_fail_in_one_line(tmp_path, data_dir):
    missing = run_cli(f"questions={tmp_path / 'absent.jsonl'}", tmp_path=tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_id": 81, "category": "writing", "turns": ["hi"]}\n{"question_id": 82,\n')
    malformed = run_cli(f"questions={bad}", tmp_path=tmp_path)
    empty_turn = tmp_path / "empty.jsonl"
    empty_turn.write_text('{"question_id": 161, "category": "translation", "turns": [""]}\n')
    empty = run_cli(f"questions={empty_turn}", tmp_path=tmp_path)
    for result, needle in ((missing, "absent.jsonl"), (malformed, "bad.jsonl:2"), (empty, "empty.jsonl:1")):
        assert result.returncode == 2, result.stderr
        error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(error_lines) == 1 and needle in error_lines[0]
    assert not (tmp_path / "runs").exists()


def test_prompt_longer_than_context_window_fails_cleanly(make_cfg, target, tmp_path):
    cfg = make_cfg("drafter=pld", *SMOKE)
    long_file = tmp_path / "long.jsonl"
    long_file.write_text(
        json.dumps(
            {
                "question_id": 241,
                "category": "summarization",
                "turns": ["word " * (target.context_window + 10)],
            }
        )
        + "\n"
    )
    cfg.questions = str(long_file)
    with pytest.raises(HarnessError, match="context window"):
        Runner(cfg, target=target)
    assert not run_dir(cfg).exists()

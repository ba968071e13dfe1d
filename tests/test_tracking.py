"""W&B tracking in offline mode (never the network): what lands in the run's own files."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from spec_bench.errors import HarnessError
from spec_bench.metrics import run_summary
from spec_bench.records import read_records
from spec_bench.report.__main__ import main as report_main
from spec_bench.tracking import RunTracker, check_mode

from . import wandb_log
from .fake_runs import QUESTIONS, paper_like_root, record, write_run


def tracked_config(mode: str):
    return OmegaConf.create(
        {
            "model": {"name": "tiny"},
            "drafter": {"name": "pld"},
            "bench": {"name": "smoke", "shard": None},
            "run_name": "pld",
            "temperature": 0.0,
            "wandb": {"mode": mode, "project": "hd-spec-bench-tests", "entity": None},
        }
    )


def test_offline_run_holds_config_questions_and_summary(tmp_path):
    write_run(tmp_path, "ar", [record(q, 10.0, [1, 1, 1]) for q in QUESTIONS])
    folder = write_run(tmp_path, "pld", [record(q, 20.0, [3, 2, 1]) for q in QUESTIONS])
    with RunTracker(tracked_config("offline")) as tracker:
        tracker.start(folder)
        for answer in read_records(folder / "answers.jsonl"):
            tracker.log_question(answer)
        tracker.log_summary(run_summary(folder))

    log = wandb_log.finished_log(folder)
    summary = wandb_log.summary(log)
    assert summary["overall/speedup"] == pytest.approx(2.0)
    assert summary["overall/mat"] == pytest.approx(2.0)
    assert summary["mt_bench/n_questions"] == 2 and summary["translation/tokens_per_s"] == pytest.approx(20.0)
    questions = [row for row in wandb_log.history(log) if "question/id" in row]
    assert [row["question/id"] for row in questions] == list(QUESTIONS)
    assert {row["question/category"] for row in questions} == {"mt_bench", "translation"}
    assert any("summary/_type" in row for row in wandb_log.history(log))  # the per-category wandb.Table
    assert wandb_log.config(log)["run_name"] == "pld"


def test_disabled_tracking_writes_nothing(tmp_path):
    folder = write_run(tmp_path, "pld", [record(81, 10.0, [1])])
    with RunTracker(tracked_config("disabled")) as tracker:
        tracker.start(folder)
        tracker.log_question(record(81, 10.0, [1]))
    assert not (folder / "wandb").exists()
    with pytest.raises(HarnessError, match="wandb.mode must be one of"):
        check_mode("sometimes")


def test_report_command_logs_its_artefacts_offline(tmp_path, capsys):
    root = paper_like_root(tmp_path)
    assert report_main([str(root), "--wandb", "offline"]) == 0
    assert "W&B: " in capsys.readouterr().out
    log = wandb_log.finished_log(root / "report")
    summary = wandb_log.summary(log)
    assert summary["tiny/hd/t0/overall/speedup"] == pytest.approx(1.8)
    logged = {
        key.split("/")[1] for row in wandb_log.history(log) for key in row if key.startswith("figures/")
    }
    assert logged == {
        "speedup_by_category",
        "mat_by_drafter",
        "speedup_t0_vs_t1",
        "speedup_vs_mat",
        "source_shares",
    }
    kinds = [r.WhichOneof("record_type") for r in wandb_log.records(log)]
    assert "artifact" in kinds

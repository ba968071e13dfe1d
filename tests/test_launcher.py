"""Hydra sweeps through the submitit launchers: the local one for real, SLURM's config."""

from __future__ import annotations

import json
import subprocess
import sys

from spec_bench.records import read_records

from . import wandb_log
from .conftest import CACHE_DIR, REPO


def test_local_launcher_runs_each_job_in_its_own_process(tmp_path, data_dir):
    # One one-turn question, 8 tokens, a fixed budget (no cost curve to measure): the
    # jobs cost little beyond starting Python and loading the model.
    questions = tmp_path / "one.jsonl"
    questions.write_text(
        json.dumps({"question_id": 161, "category": "translation", "turns": ["Say hi."]}) + "\n"
    )
    out = tmp_path / "runs"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "run.py"),
            "--multirun",
            "hydra/launcher=local",
            "drafter=ar,pld",
            "bench=smoke",
            "bench.max_new_tokens=8",
            "engine.warmup_tokens=0",
            "engine.budget=8",
            f"questions={questions}",
            f"out_dir={out}",
            f"data_dir={data_dir}",
            f"cache_dir={CACHE_DIR}",
            "wandb.mode=offline",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((out / ".hydra").glob("multirun-*/.submitit/*")), "the jobs did not go through submitit"
    for run in ("ar", "pld@8"):  # AR verifies nothing: its folder carries no budget
        folder = out / "smoke" / "smollm2_135m" / run / "t0"
        [answer] = read_records(folder / "answers.jsonl")
        assert answer["question_id"] == 161 and answer["new_tokens"] >= 1
        summary = wandb_log.summary(wandb_log.finished_log(folder))
        assert summary["overall/n_questions"] == 1 and summary["overall/tokens_per_s"] > 0


def slurm_launcher(*overrides: str):
    from spec_bench.commands import compose_config

    cfg = compose_config(["hydra/launcher=slurm", *overrides], with_hydra=True)
    return cfg.hydra.launcher


def test_slurm_launcher_defaults_and_overrides():
    defaults = slurm_launcher()
    assert defaults._target_.endswith("SlurmLauncher")
    assert defaults.gpus_per_node == 1 and defaults.partition is None
    chosen = slurm_launcher(
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
        "hydra.launcher.cpus_per_task=4",
        "hydra.launcher.mem_gb=32",
        "hydra.launcher.gpus_per_node=2",
    )
    assert (
        chosen.partition,
        chosen.timeout_min,
        chosen.cpus_per_task,
        chosen.mem_gb,
        chosen.gpus_per_node,
    ) == (
        "gpu",
        30,
        4,
        32,
        2,
    )

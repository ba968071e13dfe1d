"""Weights & Biases: each run's resolved config, per-question metrics as questions finish,
and per-category summary; for the report command, the report's tables and figures.

``wandb.mode`` comes from the config: ``offline`` (the default) writes under the run folder
and never touches the network (``wandb sync`` uploads later), ``online`` uploads as it
goes, ``disabled`` skips W&B entirely, not even importing it. The answers file stays the
record of truth; W&B is a view of it.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from omegaconf import DictConfig, OmegaConf

from spec_bench.errors import HarnessError
from spec_bench.run_names import budget_label

if TYPE_CHECKING:
    import pandas as pd

    from spec_bench.report import Report

MODES = ("offline", "online", "disabled")
SUMMARY_METRICS = ("n_questions", "tokens_per_s", "speedup", "mat", "ar_match_rate")


class Tracker(Protocol):
    """What the runner tells a tracker: where the run lives, then each finished record."""

    def start(self, folder: Path) -> None: ...

    def log_question(self, record: dict) -> None: ...


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise HarnessError(f"wandb.mode must be one of {', '.join(MODES)}, got '{mode}'")
    return mode


def _import_wandb(folder: Path):
    # WANDB_DIR too, not only init's dir: W&B's own helpers (artifact staging, the
    # service's logs) read the variable.
    os.environ["WANDB_DIR"] = str(folder)
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    return wandb


def _settings(wandb):
    # No system-metrics sampler: on a CPU it would compete with the decoding being timed.
    # No console capture: tqdm's bars are not worth a copy in every run.
    return wandb.Settings(console="off", x_disable_stats=True, save_code=False, silent=True)


def question_metrics(record: dict) -> dict:
    lengths, wall = record["accept_lengths"], record["wall_time_s"]
    metrics = {
        "question/id": record["question_id"],
        "question/category": record["category"],
        "question/new_tokens": record["new_tokens"],
        "question/wall_time_s": record["wall_time_s"],
        "question/tokens_per_s": record["new_tokens"] / wall if wall else 0.0,
        "question/steps": record["steps"],
        "question/mat": sum(lengths) / len(lengths) if lengths else math.nan,
    }
    if record.get("ar_match") is not None:
        metrics["question/ar_match"] = int(bool(record["ar_match"]))
    return metrics


def summary_metrics(summary: pd.DataFrame, prefix: str = "") -> dict:
    """``<category>/<metric>`` for every summary row (NaN left out: W&B shows it as a string)."""
    values = {}
    for row in summary.itertuples(index=False):
        for metric in SUMMARY_METRICS:
            value = getattr(row, metric)
            if not (isinstance(value, float) and math.isnan(value)):
                values[f"{prefix}{row.category}/{metric}"] = value
    return values


def runs_settings(folders: list[Path], mode: str | None = None) -> dict:
    """The W&B block (mode, project, entity) the runs were made with, ``mode`` overriding:
    the report lands in the same project, in the same mode, as its runs."""
    settings = {"mode": "offline", "project": "hd-spec-bench", "entity": None}
    if folders:
        saved = OmegaConf.load(Path(folders[0]) / "config.yaml").get("wandb")
        if saved is not None:
            settings.update(OmegaConf.to_container(saved, resolve=True))
    if mode is not None:
        settings["mode"] = mode
    return settings


def run_config(cfg: DictConfig) -> dict:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)
    return resolved


class RunTracker:
    """One W&B run per run folder (per shard when sharded); a no-op when disabled."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.settings = cfg.get("wandb") or {}
        self.mode = check_mode(str(self.settings.get("mode", "offline")))
        self.run = None
        self.wandb = None

    def start(self, folder: Path) -> None:
        if self.mode == "disabled":
            return
        self.wandb = wandb = _import_wandb(folder)
        cfg = self.cfg
        shard = cfg.bench.get("shard")
        name = "/".join(Path(folder).parts[-3:])  # <model>/<run_name>/t<T>
        if shard:
            name += "/shard-" + str(shard).replace("/", "of")
        self.run = wandb.init(
            project=self.settings.get("project"),
            entity=self.settings.get("entity"),
            mode=self.mode,
            dir=str(folder),
            name=name,
            group=f"{cfg.bench.name}/{cfg.model.name}",
            job_type="run",
            tags=[cfg.bench.name, cfg.model.name, str(cfg.drafter.name), f"budget:{budget_label(cfg)}"],
            config=run_config(cfg),
            settings=_settings(wandb),
        )

    def log_question(self, record: dict) -> None:
        if self.run is not None:
            self.run.log(question_metrics(record))

    def log_summary(self, summary: pd.DataFrame) -> None:
        """The run's per-category numbers over all its records (resumed ones included)."""
        if self.run is None:
            return
        self.run.summary.update(summary_metrics(summary))
        self.run.log({"summary": self.wandb.Table(dataframe=summary.reset_index(drop=True))})

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.finish(failed=exc_type is not None)


def log_report(report: Report, settings: dict) -> Path | None:
    """One W&B run of job type ``report`` holding the report's tables, figures and files
    (as an artefact); returns the W&B folder, or None when disabled."""
    mode = check_mode(str(settings.get("mode", "offline")))
    if mode == "disabled":
        return None
    wandb = _import_wandb(report.folder)
    root, summary = report.folder.parent, report.summary
    with wandb.init(
        project=settings.get("project"),
        entity=settings.get("entity"),
        mode=mode,
        dir=str(report.folder),
        name=f"report/{root.name}",
        job_type="report",
        config={"root": str(root.resolve())},
        settings=_settings(wandb),
    ) as run:
        for (model, drafter, temperature), rows in summary.groupby(["model", "drafter", "temperature"]):
            run.summary.update(summary_metrics(rows, prefix=f"{model}/{drafter}/t{temperature:g}/"))
        images = {
            f"figures/{path.stem}": wandb.Image(str(path)) for path in report.files if path.suffix == ".png"
        }
        run.log(
            {
                "summary": wandb.Table(dataframe=summary.reset_index(drop=True)),
                "time_split": wandb.Table(dataframe=report.time_split.reset_index(drop=True)),
                **images,
            }
        )
        artifact = wandb.Artifact(_artifact_name(root), type="report")
        for path in report.files:
            artifact.add_file(str(path))
        run.log_artifact(artifact)
        return Path(run.dir).parent


def _artifact_name(root: Path) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(root.resolve().parts[-3:])).strip("-")
    return f"report-{slug or 'root'}"

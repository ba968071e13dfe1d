"""From answers files to Spec-Bench's numbers, computed as its ``evaluation/speed.py`` does.

- a question's speed = its new tokens over all turns / its wall time over all turns;
- a category's tokens/s = the mean of its questions' speeds;
- speedup = method tokens/s / ``ar`` tokens/s on the same questions (same model, bench
  profile and temperature);
- MAT = the mean of all accepted lengths (bonus token included; 1.0 for AR).

A run is identified by its folder name (``drafter``: ``pld``, ``pld@auto``, ``hd+dedup``),
the method it ran (``method``) and how it chose its verification budget (``budget``:
``paper``, ``auto``, a number, or ``none`` for AR). AR is the baseline of every budget.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from spec_bench.data import CATEGORIES
from spec_bench.records import read_records
from spec_bench.run_names import budget_label, run_label

SUMMARY_COLUMNS = [
    "model",
    "drafter",
    "method",
    "budget",
    "temperature",
    "category",
    "n_questions",
    "tokens_per_s",
    "speedup",
    "mat",
    "ar_match_rate",
    "knobs",
]
BASELINE = "ar"


def find_runs(root: Path) -> list[Path]:
    """Run folders (those with a config.yaml and answers) below ``root``."""
    root = Path(root)
    folders = []
    for config in sorted(root.rglob("config.yaml")):
        parts = set(config.relative_to(root).parts)
        # W&B keeps a config.yaml of its own in every run it tracks.
        if parts & {".hydra", "report", "wandb"}:
            continue
        if any(config.parent.glob("answers*.jsonl")):
            folders.append(config.parent)
    return folders


def read_answers(folder: Path) -> list[dict]:
    """Every record in a run folder's answers files, shards included, unchecked."""
    return [record for path in sorted(Path(folder).glob("answers*.jsonl")) for record in read_records(path)]


def load_questions_frame(
    folders: list[Path], read: Callable[[Path], list[dict]] = read_answers
) -> pd.DataFrame:
    """One row per question per run; ``read`` gives a folder's records (the report passes
    one that refuses inconsistent shards)."""
    rows = []
    for folder in folders:
        cfg = OmegaConf.load(folder / "config.yaml")
        for record in read(folder):
            rows.append(
                {
                    "bench": cfg.bench.name,
                    "model": cfg.model.name,
                    "drafter": run_label(cfg),
                    "method": cfg.run_name,
                    "budget": budget_label(cfg),
                    "temperature": float(cfg.temperature),
                    "category": record["category"],
                    "question_id": record["question_id"],
                    "new_tokens": record["new_tokens"],
                    "wall_time_s": record["wall_time_s"],
                    "speed": record["new_tokens"] / record["wall_time_s"] if record["wall_time_s"] else 0.0,
                    "steps": record.get("steps"),
                    "accept_lengths": record["accept_lengths"],
                    "ar_match": record.get("ar_match"),
                    "phase_times": _summed(record, "phase_times"),
                    "accepted_by_source": _summed(record, "accepted_by_source"),
                    "folder": str(folder),
                    # A knob sweep's settings (conf/experiment/), as JSON; "{}" for other runs.
                    "knobs": _knobs_json(cfg),
                }
            )
    return pd.DataFrame(rows)


def _knobs_json(cfg) -> str:
    knobs = cfg.get("knobs")
    return json.dumps(OmegaConf.to_container(knobs) if knobs else {}, sort_keys=True)


def _summed(record: dict, field: str) -> dict:
    """A per-question count or time split: the record's own when it has one, else its
    turns' added up."""
    if isinstance(record.get(field), dict):
        return dict(record[field])
    total: dict = {}
    for turn in record.get("turns", []):
        for key, value in (turn.get(field) or {}).items():
            total[key] = total.get(key, 0) + value
    return total


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows per (model, drafter, temperature) x (each category, overall)."""
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = []
    for (bench, model, drafter, temperature), run in frame.groupby(
        ["bench", "model", "drafter", "temperature"]
    ):
        method, budget, knobs = run.method.iloc[0], run.budget.iloc[0], run.knobs.iloc[0]
        baseline = frame[
            (frame.bench == bench)
            & (frame.model == model)
            & (frame.drafter == BASELINE)
            & (frame.temperature == temperature)
        ]
        for category in [*_ordered_categories(run.category), "overall"]:
            part = run if category == "overall" else run[run.category == category]
            rows.append(
                {
                    "model": model,
                    "drafter": drafter,
                    "method": method,
                    "budget": budget,
                    "temperature": temperature,
                    "category": category,
                    "n_questions": len(part),
                    "tokens_per_s": part.speed.mean(),
                    "speedup": _speedup(part, baseline),
                    "mat": _mat(part),
                    "ar_match_rate": _match_rate(part),
                    "knobs": knobs,
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _ordered_categories(categories: pd.Series) -> list[str]:
    present = set(categories)
    return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))


def _speedup(part: pd.DataFrame, baseline: pd.DataFrame) -> float:
    same = baseline[baseline.question_id.isin(part.question_id)]
    ours = part[part.question_id.isin(same.question_id)]
    if same.empty:
        return float("nan")
    return ours.speed.mean() / same.speed.mean()


def _mat(part: pd.DataFrame) -> float:
    lengths = [n for lengths in part.accept_lengths for n in lengths]
    return sum(lengths) / len(lengths) if lengths else float("nan")


def _match_rate(part: pd.DataFrame) -> float:
    checked = part.ar_match.dropna()
    return float(checked.astype(bool).mean()) if len(checked) else float("nan")


def format_table(summary: pd.DataFrame) -> str:
    table = summary.copy()
    for column in ("tokens_per_s", "speedup", "mat", "ar_match_rate"):
        table[column] = table[column].map(lambda x: "-" if pd.isna(x) else f"{x:.2f}")
    return table.to_string(index=False)


def run_summary(folder: Path) -> pd.DataFrame:
    """One run's per-category numbers, with speedup when the AR run is there."""
    folder = Path(folder)
    model_root = folder.parents[1]  # <out_dir>/<bench>/<model>/<run>/<t> -> .../<model>
    siblings = [f for f in find_runs(model_root) if f.name == folder.name]
    summary = summarize(load_questions_frame(siblings))
    cfg = OmegaConf.load(folder / "config.yaml")
    return summary[(summary.drafter == run_label(cfg)) & (summary.model == cfg.model.name)]


def print_run_summary(folder: Path) -> None:
    print(format_table(run_summary(folder)))

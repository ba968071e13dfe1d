"""From answers files to Spec-Bench's numbers, computed as its ``evaluation/speed.py`` does.

- a question's speed = its new tokens over all turns / its wall time over all turns (the
  mean over its repeats, ``bench.repeats``);
- a category's tokens/s = the mean of its questions' speeds;
- speedup = method tokens/s / AR tokens/s on the same questions: AR's from the same
  records when the run was timed ``paired`` (AR decoded beside each question), else from
  the ``ar`` run of the same model, bench profile and temperature (``separate``, Spec-Bench's
  way);
- MAT = the mean of all accepted lengths (bonus token included; 1.0 for AR);
- each with a 95% interval from a paired bootstrap over questions (``spec_bench.uncertainty``);
- greedy runs: the share of questions equal to AR's tokens (``ar_match_rate``), and of those
  that differ, near-ties (``near_tie_rate``) and defects (``defect_rate``,
  ``spec_bench.greedy_check``).

A run is identified by its folder name (``drafter``: ``pld``, ``pld@auto``, ``hd+dedup``),
the method it ran (``method``) and how it chose its verification budget (``budget``:
``paper``, ``auto``, a number, or ``none`` for AR). AR is the baseline of every budget.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from spec_bench.data import CATEGORIES
from spec_bench.records import read_records
from spec_bench.run_names import budget_label, run_label
from spec_bench.uncertainty import Estimate, ratio_of_means, ratio_of_sums

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
    "speedup_lo",
    "speedup_hi",
    "mat",
    "mat_lo",
    "mat_hi",
    "ar_match_rate",
    "near_tie_rate",
    "defect_rate",
    "timing",
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
                    "repeat": record.get("repeat", 0),
                    "new_tokens": record["new_tokens"],
                    "wall_time_s": record["wall_time_s"],
                    "speed": record["new_tokens"] / record["wall_time_s"] if record["wall_time_s"] else 0.0,
                    "steps": record.get("steps"),
                    "accept_lengths": record["accept_lengths"],
                    "ar_match": record.get("ar_match"),
                    "greedy_check": _greedy_check(record),
                    "ar_speed": _paired_ar_speed(record),
                    "phase_times": _summed(record, "phase_times"),
                    "accepted_by_source": _summed(record, "accepted_by_source"),
                    "folder": str(folder),
                    # A knob sweep's settings (conf/experiment/), as JSON; "{}" for other runs.
                    "knobs": _knobs_json(cfg),
                }
            )
    return pd.DataFrame(rows)


def _greedy_check(record: dict) -> str | None:
    """match, near_tie or defect; records from before the classification only say match or not."""
    if "greedy_check" in record:
        return record["greedy_check"]
    if record.get("ar_match") is None:
        return None
    return "match" if record["ar_match"] else "defect"


def _paired_ar_speed(record: dict) -> float:
    paired = record.get("paired_ar")
    if not paired or not paired.get("wall_time_s"):
        return float("nan")
    return paired["new_tokens"] / paired["wall_time_s"]


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
        paired = bool(run.ar_speed.notna().all())
        baseline = frame[
            (frame.bench == bench)
            & (frame.model == model)
            & (frame.drafter == BASELINE)
            & (frame.temperature == temperature)
        ]
        ar_speed = None if paired else per_question(baseline).speed
        for category in [*_ordered_categories(run.category), "overall"]:
            part = run if category == "overall" else run[run.category == category]
            questions = per_question(part)
            speedup = _speedup(questions, ar_speed)
            mat = ratio_of_sums(questions.accepted, questions.steps)
            rows.append(
                {
                    "model": model,
                    "drafter": drafter,
                    "method": method,
                    "budget": budget,
                    "temperature": temperature,
                    "category": category,
                    "n_questions": len(questions),
                    "tokens_per_s": questions.speed.mean(),
                    "speedup": speedup.value,
                    "speedup_lo": speedup.low,
                    "speedup_hi": speedup.high,
                    "mat": mat.value,
                    "mat_lo": mat.low,
                    "mat_hi": mat.high,
                    **_check_rates(part),
                    "timing": "paired" if paired else "separate",
                    "knobs": knobs,
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def question_speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Each question's speedup per run, with a 95% interval over its repeats (a point when it
    was decoded once): the spread a category's mean averages away."""
    rows = []
    for (bench, model, drafter, temperature), run in frame.groupby(
        ["bench", "model", "drafter", "temperature"]
    ):
        if drafter == BASELINE:
            continue
        paired = bool(run.ar_speed.notna().all())
        ar_run = frame[
            (frame.bench == bench)
            & (frame.model == model)
            & (frame.drafter == BASELINE)
            & (frame.temperature == temperature)
        ]
        ar_mean = ar_run.groupby("question_id").speed.mean()
        for question_id, records in run.groupby("question_id"):
            if paired:
                estimate = ratio_of_means(records.speed.to_numpy(), records.ar_speed.to_numpy())
            elif question_id in ar_mean.index:
                estimate = ratio_of_means(
                    records.speed.to_numpy(), np.full(len(records), ar_mean[question_id])
                )
            else:
                continue
            rows.append(
                {
                    "model": model,
                    "drafter": drafter,
                    "temperature": temperature,
                    "category": records.category.iloc[0],
                    "question_id": question_id,
                    "repeats": len(records),
                    "speedup": estimate.value,
                    "speedup_lo": estimate.low,
                    "speedup_hi": estimate.high,
                }
            )
    columns = [
        "model",
        "drafter",
        "temperature",
        "category",
        "question_id",
        "repeats",
        "speedup",
        "speedup_lo",
        "speedup_hi",
    ]
    return pd.DataFrame(rows, columns=columns)


def _ordered_categories(categories: pd.Series) -> list[str]:
    present = set(categories)
    return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))


def per_question(part: pd.DataFrame) -> pd.DataFrame:
    """One row per question: its speed and paired AR speed (means over repeats), accepted
    tokens and steps (sums over repeats)."""
    if part.empty:
        return pd.DataFrame(columns=["speed", "ar_speed", "accepted", "steps"])
    lengths = part.accept_lengths
    return (
        part.assign(accepted=lengths.map(sum), steps=lengths.map(len))
        .groupby("question_id")
        .agg(
            speed=("speed", "mean"),
            ar_speed=("ar_speed", "mean"),
            accepted=("accepted", "sum"),
            steps=("steps", "sum"),
        )
    )


def _speedup(questions: pd.DataFrame, ar_speed: pd.Series | None) -> Estimate:
    """Mean method speed over mean AR speed on the same questions, paired in the bootstrap."""
    ar = questions.ar_speed if ar_speed is None else ar_speed.reindex(questions.index)
    both = ar.notna()
    return ratio_of_means(questions.speed[both].to_numpy(), ar[both].to_numpy())


def _check_rates(part: pd.DataFrame) -> dict[str, float]:
    checked = part.greedy_check.dropna()
    if checked.empty:
        return {"ar_match_rate": float("nan"), "near_tie_rate": float("nan"), "defect_rate": float("nan")}
    return {
        "ar_match_rate": float((checked == "match").mean()),
        "near_tie_rate": float((checked == "near_tie").mean()),
        "defect_rate": float((checked == "defect").mean()),
    }


def _mat(part: pd.DataFrame) -> float:
    lengths = [n for lengths in part.accept_lengths for n in lengths]
    return sum(lengths) / len(lengths) if lengths else float("nan")


def format_table(summary: pd.DataFrame) -> str:
    table = summary.drop(columns=["knobs"])
    for column in table.select_dtypes("number").columns.drop(["temperature", "n_questions"], errors="ignore"):
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

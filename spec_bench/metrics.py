"""From answers files to Spec-Bench's numbers, computed as its ``evaluation/speed.py`` does.

- a question's speed = its new tokens over all turns / its wall time over all turns;
- a category's tokens/s = the mean of its questions' speeds;
- speedup = method tokens/s / ``ar`` tokens/s on the same questions (same model, bench
  profile and temperature);
- MAT = the mean of all accepted lengths (bonus token included; 1.0 for AR).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from spec_bench.data import CATEGORIES
from spec_bench.records import read_records

SUMMARY_COLUMNS = [
    "model",
    "drafter",
    "temperature",
    "category",
    "n_questions",
    "tokens_per_s",
    "speedup",
    "mat",
    "ar_match_rate",
]
BASELINE = "ar"


def find_runs(root: Path) -> list[Path]:
    """Run folders (those with a config.yaml and answers) below ``root``."""
    root = Path(root)
    folders = []
    for config in sorted(root.rglob("config.yaml")):
        parts = set(config.relative_to(root).parts)
        if ".hydra" in parts or "report" in parts:
            continue
        if any(config.parent.glob("answers*.jsonl")):
            folders.append(config.parent)
    return folders


def load_questions_frame(folders: list[Path]) -> pd.DataFrame:
    """One row per question per run."""
    rows = []
    for folder in folders:
        cfg = OmegaConf.load(folder / "config.yaml")
        for path in sorted(folder.glob("answers*.jsonl")):
            for record in read_records(path):
                rows.append(
                    {
                        "bench": cfg.bench.name,
                        "model": cfg.model.name,
                        "drafter": cfg.run_name,
                        "temperature": float(cfg.temperature),
                        "category": record["category"],
                        "question_id": record["question_id"],
                        "new_tokens": record["new_tokens"],
                        "wall_time_s": record["wall_time_s"],
                        "speed": record["new_tokens"] / record["wall_time_s"]
                        if record["wall_time_s"]
                        else 0.0,
                        "accept_lengths": record["accept_lengths"],
                        "ar_match": record.get("ar_match"),
                        "folder": str(folder),
                    }
                )
    return pd.DataFrame(rows)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows per (model, drafter, temperature) x (each category, overall)."""
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = []
    for (bench, model, drafter, temperature), run in frame.groupby(
        ["bench", "model", "drafter", "temperature"]
    ):
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
                    "temperature": temperature,
                    "category": category,
                    "n_questions": len(part),
                    "tokens_per_s": part.speed.mean(),
                    "speedup": _speedup(part, baseline),
                    "mat": _mat(part),
                    "ar_match_rate": _match_rate(part),
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


def print_run_summary(folder: Path) -> None:
    """After a run: its per-category numbers, with speedup when the AR run is there."""
    folder = Path(folder)
    model_root = folder.parents[1]  # <out_dir>/<bench>/<model>/<run>/<t> -> .../<model>
    siblings = [f for f in find_runs(model_root) if f.name == folder.name]
    frame = load_questions_frame(siblings)
    summary = summarize(frame)
    cfg = OmegaConf.load(folder / "config.yaml")
    mine = summary[(summary.drafter == cfg.run_name) & (summary.model == cfg.model.name)]
    print(format_table(mine))

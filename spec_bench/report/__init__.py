"""Reports built from a runs root: summary.csv now; tables and figures hang off it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spec_bench.errors import HarnessError
from spec_bench.metrics import find_runs, load_questions_frame, summarize


def build_summary(root: Path) -> pd.DataFrame:
    folders = find_runs(root)
    if not folders:
        raise HarnessError(f"no runs found under {root}")
    return summarize(load_questions_frame(folders))


def write_summary(root: Path) -> Path:
    """Write ``<root>/report/summary.csv`` atomically and return its path."""
    summary = build_summary(Path(root))
    out = Path(root) / "report"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.csv"
    tmp = path.with_name("summary.csv.tmp")
    summary.to_csv(tmp, index=False, float_format="%.4f")
    tmp.replace(path)
    return path

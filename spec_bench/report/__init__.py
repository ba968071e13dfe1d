"""Reports built from a runs root: summary.csv, the paper's tables and figures (build.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from spec_bench.report.build import Report, RunsRoot, load_root, write_csv, write_report

__all__ = ["Report", "RunsRoot", "build_summary", "load_root", "write_report", "write_summary"]


def build_summary(root: Path) -> pd.DataFrame:
    return load_root(Path(root)).summary


def write_summary(root: Path) -> Path:
    """Write only ``<root>/report/summary.csv`` (atomically) and return its path."""
    summary = build_summary(Path(root))
    out = Path(root) / "report"
    out.mkdir(parents=True, exist_ok=True)
    return write_csv(summary, out / "summary.csv")

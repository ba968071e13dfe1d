"""python -m spec_bench.report <runs root>: summary.csv plus a speedup / MAT table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from spec_bench.errors import HarnessError
from spec_bench.report import write_summary


def pivot_table(summary: pd.DataFrame, value: str) -> str:
    table = summary.pivot_table(
        index=["model", "temperature", "drafter"], columns="category", values=value, sort=False
    )
    return table.to_string(float_format=lambda x: f"{x:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spec_bench.report", description="Summarise every run below a runs root."
    )
    parser.add_argument("root", type=Path, help="runs root, e.g. runs or runs/quick/smollm2_135m")
    args = parser.parse_args(argv)
    try:
        path = write_summary(args.root)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = pd.read_csv(path)
    print("Speedup over AR\n" + pivot_table(summary, "speedup"))
    print("\nMean accepted tokens\n" + pivot_table(summary, "mat"))
    print("\nGreedy match with AR\n" + pivot_table(summary, "ar_match_rate"))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

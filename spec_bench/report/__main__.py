"""python -m spec_bench.report <runs root>: tables, figures and summary.csv in <root>/report/.

Prints the Markdown tables; the W&B settings of the runs (``wandb.mode`` etc. in their
config.yaml) decide whether the report is also logged to W&B, unless ``--wandb`` says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

from spec_bench.errors import HarnessError
from spec_bench.metrics import find_runs
from spec_bench.report import write_report
from spec_bench.tracking import MODES, log_report, runs_settings

# Figures are files here, never windows, even where a display is set.
matplotlib.use("Agg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spec_bench.report", description="Tables and figures of every run below a runs root."
    )
    parser.add_argument("root", type=Path, help="runs root, e.g. runs/quick/smollm2_135m")
    parser.add_argument(
        "--wandb",
        choices=MODES,
        default=None,
        help="log the report to W&B in this mode (default: the runs' wandb.mode)",
    )
    args = parser.parse_args(argv)
    try:
        report = write_report(args.root)
        wandb_folder = log_report(report, runs_settings(find_runs(args.root), args.wandb))
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.markdown)
    for note in report.notes:
        print(f"note: {note}")
    print(f"\nwrote {len(report.files)} files to {report.folder}")
    if wandb_folder is not None:
        print(f"W&B: {wandb_folder}")
    if report.warning:
        print(f"\n{'!' * 80}\n{report.warning}\n{'!' * 80}", file=sys.stderr)
    if report.defect:
        print(f"\n{'!' * 80}\n{report.defect}\n{'!' * 80}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

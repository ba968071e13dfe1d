"""What a Hydra job does, and how errors reach the user: one line, exit status 2."""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from spec_bench.errors import HarnessError


def run_one(cfg: DictConfig) -> None:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from spec_bench.metrics import format_table, run_summary
        from spec_bench.runner import Runner
        from spec_bench.tracking import RunTracker

        tracker = RunTracker(cfg)
        runner = Runner(cfg)
        with tracker:
            summary = runner.run(tracker)
            table = run_summary(summary.folder)
            tracker.log_summary(table)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(format_table(table))

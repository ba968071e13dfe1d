"""What a Hydra job does, and how errors reach the user: one line, exit status 2."""

from __future__ import annotations

import logging
import sys

from omegaconf import DictConfig

from spec_bench.errors import HarnessError


def run_one(cfg: DictConfig) -> None:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from spec_bench.runner import Runner

        summary = Runner(cfg).run()
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    from spec_bench.metrics import print_run_summary

    print_run_summary(summary.folder)

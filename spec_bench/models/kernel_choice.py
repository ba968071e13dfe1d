"""A measured kernel choice, cached as JSON per model, device, dtype and threads.

Timing two kernels again in every process would let noise give two runs of one grid
different kernels, and their speedups would no longer compare; so a choice is measured once
and read back by every later run that shares the cache on this machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from spec_bench.files import write_text_atomic


def cached_or_measured(key: str, cache: str | os.PathLike | None, measure: Callable[[], dict]) -> bool:
    """``record[key]`` of the cached record when ``cache`` holds a readable one, else of
    ``measure()``'s record (the choice under ``key`` with its timings), written to ``cache``."""
    path = Path(cache) if cache is not None else None
    if path is not None and path.is_file():
        try:
            return bool(json.loads(path.read_text())[key])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: measure again and overwrite it
    record = measure()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return bool(record[key])

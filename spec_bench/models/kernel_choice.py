"""A measured kernel choice, cached as JSON per model, device, dtype and threads.

Timing two kernels again in every process would let noise give two runs of one grid
different kernels, and their speedups would no longer compare; so a choice is measured once
and read back by every later run that shares the cache on this machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
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


def timed_switch(
    setting,
    key: str,
    cache: str | os.PathLike | None,
    model,
    device,
    put: Callable[[bool], object],
    names: tuple[str, str],
    sizes: Sequence[int],
    calls: int,
    margin: float,
) -> bool:
    """``setting`` when it is true or false; for ``auto`` (or None) the cached choice ``key``
    between two ways of running ``model`` (``put(False)``, the one it replaces, and
    ``put(True)``, ours), else measured: whole forwards of each of ``sizes`` tokens under each,
    interleaved (``compare_forwards``), ours kept where its time is under ``margin`` times the
    other's. The record holds both times under ``names`` (``<name>_s``). Measuring leaves
    ``put(False)`` in place; the caller applies the choice."""

    def measure() -> dict:
        from spec_bench.engine.cost import compare_forwards

        theirs, ours = names
        try:
            times = compare_forwards(
                model, device, {theirs: lambda: put(False), ours: lambda: put(True)}, sizes=sizes, calls=calls
            )
        finally:
            put(False)
        return {
            key: times[ours] < margin * times[theirs],
            f"{theirs}_s": times[theirs],
            f"{ours}_s": times[ours],
            "sizes": list(sizes),
        }

    if setting not in (None, "auto"):
        return bool(setting)
    return cached_or_measured(key, cache, measure)

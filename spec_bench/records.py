"""The answers file: one JSON line per question, appended and flushed as each finishes.

A run killed at any moment leaves whole lines plus at most one partial last line; reading
drops (and truncates away) that partial line so the question is simply redone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from spec_bench.errors import HarnessError


def read_records(path: Path, repair: bool = False) -> list[dict]:
    """Whole records in ``path``; with ``repair`` a torn last line is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, good_bytes, offset = [], 0, 0
    for line in data.splitlines(keepends=True):
        offset += len(line)
        complete = line.endswith(b"\n")
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            record = None
            if complete:
                raise HarnessError(f"{path}: corrupt record at byte {offset - len(line)}") from None
        if record is None or not complete:
            if not complete:
                break
            good_bytes = offset
            continue
        records.append(record)
        good_bytes = offset
    if repair and good_bytes < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
    return records


class RecordWriter:
    """Appends records durably: each line is on disk before the next question starts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

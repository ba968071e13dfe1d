"""Read what an offline W&B run wrote, straight from its ``run-<id>.wandb`` file.

Offline runs keep no ``wandb-summary.json`` (only a sync writes one), and wandb 0.31 ships
no Python reader for the file. Its framing is LevelDB's log format: after a 7-byte header,
32 KiB blocks of chunks (CRC32C, length, type), a record split over FIRST/MIDDLE/LAST
chunks; each record is a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    out, pieces, offset = [], [], HEADER
    while offset + HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < HEADER:  # block trailer too short for a chunk header: zero padding
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        payload = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind in (FULL, FIRST, MIDDLE, LAST):
            pieces.append(payload)
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(pieces))
            out.append(record)
            pieces = []
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def summary(path: Path) -> dict:
    """The run's final summary: every summary update applied in order."""
    values = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                values[_key(item)] = json.loads(item.value_json)
    return values


def history(path: Path) -> list[dict]:
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({_key(item): json.loads(item.value_json) for item in record.history.item})
    return rows


def config(path: Path) -> dict:
    """The config given to ``wandb.init`` (kept in the run record) and later updates."""
    values = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind not in ("run", "config"):
            continue
        for item in record.run.config.update if kind == "run" else record.config.update:
            values[_key(item)] = json.loads(item.value_json)
    return values


def run_files(folder: Path) -> list[Path]:
    """The transaction logs of every offline run under ``folder``."""
    return sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb"))


def finished_log(folder: Path, timeout_s: float = 30.0) -> Path:
    """The one offline run's log under ``folder`` once it holds the run's exit record.

    ``run.finish()`` can return before W&B's service has flushed the file (seen with
    wandb 0.31: an empty log read right after finish, a complete one a moment later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = run_files(folder)
        assert len(logs) <= 1, f"more than one W&B run under {folder}: {logs}"
        if logs and any(r.WhichOneof("record_type") == "exit" for r in records(logs[0])):
            return logs[0]
        assert time.monotonic() < deadline, f"no finished W&B run under {folder} after {timeout_s:g} s"
        time.sleep(0.2)

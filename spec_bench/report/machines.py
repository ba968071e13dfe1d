"""Which machines and software produced the runs of a root.

Speedups divide one run's tokens/s by another's, so they only mean something when both
ran on the same hardware, thread count and torch build; the report says loudly when not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

MACHINE_COLUMNS = ["cpu", "gpu", "device", "torch_threads", "torch", "transformers"]


def read_environments(folders: list[Path]) -> pd.DataFrame:
    """One row per environment file (a sharded run has one per shard)."""
    rows = []
    for folder in folders:
        for path in sorted(Path(folder).glob("environment*.json")):
            info = json.loads(path.read_text())
            packages = info.get("packages") or {}
            rows.append(
                {
                    "cpu": info.get("cpu"),
                    "gpu": info.get("gpu"),
                    "device": info.get("device"),
                    "torch_threads": info.get("torch_threads"),
                    "torch": packages.get("torch"),
                    "transformers": packages.get("transformers"),
                    "folder": str(folder),
                }
            )
    return pd.DataFrame(rows, columns=[*MACHINE_COLUMNS, "folder"])


def machines(environments: pd.DataFrame) -> pd.DataFrame:
    """Distinct machine settings with how many run folders used each."""
    if environments.empty:
        return pd.DataFrame(columns=[*MACHINE_COLUMNS, "runs"])
    filled = environments.fillna("-").astype({"torch_threads": str})
    grouped = filled.groupby(MACHINE_COLUMNS, sort=False).folder.nunique()
    return grouped.rename("runs").reset_index()


def mixed_machines_warning(table: pd.DataFrame) -> str | None:
    if len(table) <= 1:
        return None
    return (
        f"WARNING: the runs in this root come from {len(table)} different machines or software "
        f"setups (see Environment); speedups across them are not comparable"
    )

"""Which machines and software produced the runs of a root.

Speedups divide one run's tokens/s by another's, so they only mean something when both
ran on the same hardware, thread count and torch build; the report says loudly when not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

MACHINE_COLUMNS = ["cpu", "gpu", "device", "dtype", "kernels", "torch_threads", "torch", "transformers"]


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
                    "dtype": info.get("dtype"),
                    "kernels": info.get("kernels"),
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


def read_corpora(folders: list[Path]) -> pd.DataFrame:
    """The databases the runs drafted from: the retrieval datastore's corpus (REST, HD's L)
    and the model database's prompts and answer length (HD's S), one row per distinct set."""
    rows = []
    for folder in folders:
        config = OmegaConf.load(Path(folder) / "config.yaml")
        datastore, model_db = config.get("datastore") or {}, config.get("model_db") or {}
        rows.append(
            {
                "datastore": datastore.get("corpus"),
                "model_db": model_db.get("corpus"),
                "model_db_prompts": model_db.get("limit"),
                "model_db_tokens": model_db.get("max_new_tokens"),
            }
        )
    table = pd.DataFrame(rows, columns=["datastore", "model_db", "model_db_prompts", "model_db_tokens"])
    return table.dropna(how="all").drop_duplicates().reset_index(drop=True)

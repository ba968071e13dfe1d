"""What machine and software produced a result, saved beside every run."""

from __future__ import annotations

import importlib.metadata
import os
import platform

import torch

PACKAGES = ("torch", "transformers", "hydra-core", "draftretriever", "wandb", "numpy")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device | str = "cpu") -> dict:
    device = torch.device(device)
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "packages": versions,
    }
    return info


def machine_label(info: dict) -> str:
    """A short name to group numbers by machine (e.g. in benchmark file names)."""
    name = info.get("gpu") or info.get("cpu") or "unknown"
    label = "".join(ch if ch.isalnum() else "-" for ch in name.lower())
    while "--" in label:
        label = label.replace("--", "-")
    return f"{label.strip('-')}-{info.get('torch_threads')}t"

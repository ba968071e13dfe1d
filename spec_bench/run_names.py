"""How a run is named, from its config alone (no model, no torch): the temperature folder,
the budget mode, and the run folder's name, shared by the runner and the report."""

from __future__ import annotations

BUDGET_MODES = ("paper", "auto")
NO_BUDGET = "none"  # AR verifies nothing


def temperature_label(temperature: float) -> str:
    return f"t{float(temperature):g}"


def budget_label(cfg) -> str:
    """How a run chose its verification budget: ``paper`` (what the method's authors verify
    per step), ``auto`` (cost-aware), a fixed number, or ``none`` for AR."""
    drafter = cfg.get("drafter") or {}
    if drafter.get("name") == "ar":
        return NO_BUDGET
    engine = cfg.get("engine") or {}
    return str(engine.get("budget", "paper"))


def run_label(cfg) -> str:
    """The run's folder name: the method, tagged with its budget unless that is the paper's."""
    label = budget_label(cfg)
    return cfg.run_name if label in ("paper", NO_BUDGET) else f"{cfg.run_name}@{label}"


def split_run_label(label: str) -> tuple[str, str]:
    """``pld@auto`` -> (``pld``, ``auto``); ``pld`` -> (``pld``, ``paper``); ``ar`` -> (``ar``, ``none``)."""
    method, _, budget = label.partition("@")
    return method, budget or (NO_BUDGET if method == "ar" else "paper")

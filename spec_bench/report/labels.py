"""Display names and orders shared by tables, figures and the notebook, as in the paper."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import cycle

from spec_bench.data import CATEGORIES
from spec_bench.metrics import BASELINE

CATEGORY_LABELS = {
    "mt_bench": "MT",
    "translation": "Trans.",
    "summarization": "Sum.",
    "qa": "QA",
    "math_reasoning": "Math",
    "rag": "RAG",
    "overall": "Overall",
}
DRAFTER_LABELS = {"ar": "AR", "pld": "PLD", "rest": "REST", "lookahead": "Lookahead", "hd": "HD"}
# Fixed per drafter so a method keeps its colour from one figure to the next.
DRAFTER_COLORS = {
    "ar": "#7f7f7f",
    "pld": "#1f77b4",
    "rest": "#ff7f0e",
    "lookahead": "#2ca02c",
    "hd": "#d62728",
}
SPARE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
SOURCE_LABELS = {"W": "W (context)", "S": "S (model)", "L": "L (statistics)"}


def category_label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category)


def drafter_label(drafter: str) -> str:
    """``hd-WS``, an ablation run of `make ablations`, reads ``HD (WS)``."""
    if drafter.startswith("hd-") and drafter[3:] and set(drafter[3:]) <= set("WSL"):
        return f"HD ({drafter[3:]})"
    return DRAFTER_LABELS.get(drafter, drafter)


def temperature_text(temperature: float) -> str:
    return f"T={float(temperature):g}"


def ordered_drafters(drafters: Iterable[str]) -> list[str]:
    """AR first, then the paper's order, then anything else (ablations) by name."""
    present = set(drafters)
    known = [d for d in DRAFTER_LABELS if d in present]
    return known + sorted(present - set(known))


def ordered_categories(categories: Iterable[str]) -> list[str]:
    present = set(categories)
    known = [c for c in CATEGORIES if c in present]
    rest = sorted(present - set(known) - {"overall"})
    return known + rest + (["overall"] if "overall" in present else [])


def drafter_colors(drafters: Iterable[str]) -> dict[str, str]:
    spare = cycle(SPARE_COLORS)
    return {d: DRAFTER_COLORS.get(d) or next(spare) for d in ordered_drafters(drafters)}


def is_baseline(drafter: str) -> bool:
    return drafter == BASELINE

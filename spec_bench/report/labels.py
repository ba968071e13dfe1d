"""Display names and orders shared by tables, figures and the notebook, as in the paper."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import cycle

from spec_bench.data import CATEGORIES
from spec_bench.metrics import BASELINE
from spec_bench.run_names import NO_BUDGET, split_run_label

CATEGORY_LABELS = {
    "mt_bench": "MT",
    "translation": "Trans.",
    "summarization": "Sum.",
    "qa": "QA",
    "math_reasoning": "Math",
    "rag": "RAG",
    "overall": "Overall",
}
# Each published method, then our variant of it.
DRAFTER_LABELS = {
    "ar": "AR",
    "pld": "PLD",
    "pld_tree": "PLD tree",
    "rest": "REST",
    "rest_spread": "REST spread",
    "lookahead": "Lookahead",
    "lookahead_fixed": "Lookahead fixed",
    "hd": "HD",
    "hd_fixed": "HD fixed",
    # Beyond the paper: drafters published since, and hierarchies of our own.
    "token_recycling": "TR",
    "suffix": "Suffix",
    "suffix_tr": "Suffix+TR",
    "hd_tr": "HD+TR",
    "hd_suffix": "HD+Suffix",
    "hd_suffix_tr": "HD+Suffix+TR",
}
BEYOND_THE_PAPER = ("token_recycling", "suffix", "suffix_tr", "hd_tr", "hd_suffix", "hd_suffix_tr")
# Fixed per drafter so a method keeps its colour from one figure to the next.
DRAFTER_COLORS = {
    "ar": "#7f7f7f",
    "pld": "#1f77b4",
    "pld_tree": "#6baed6",
    "rest": "#ff7f0e",
    "rest_spread": "#fdae6b",
    "lookahead": "#2ca02c",
    "lookahead_fixed": "#74c476",
    "hd": "#d62728",
    "hd_fixed": "#fc9272",
    "token_recycling": "#9467bd",
    "suffix": "#8c564b",
    "suffix_tr": "#e377c2",
    "hd_tr": "#17becf",
    "hd_suffix": "#bcbd22",
    "hd_suffix_tr": "#393b79",
}
BUDGET_BLOCKS = {"paper": "Published budgets (paper)", "auto": "Automatic budget (auto)"}
SPARE_COLORS = ("#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3")
# Draft sources in order of locality (a hierarchy's own order), with their names.
SOURCE_LABELS = {
    "W": "W (context)",
    "suffix": "Suffix tree",
    "S": "S (model)",
    "L": "L (statistics)",
    "TR": "TR (recycled top-k)",
}
SOURCE_COLORS = {"W": "#4c72b0", "suffix": "#8c564b", "S": "#55a868", "L": "#c44e52", "TR": "#9467bd"}


def category_label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category)


def method_label(method: str) -> str:
    """``hd-WS`` (a database ablation) reads ``HD (WS)``, ``hd+dedup`` (one fix) ``HD +dedup``."""
    if method.startswith("hd-") and method[3:] and set(method[3:]) <= set("WSL"):
        return f"HD ({method[3:]})"
    if method.startswith("hd+") and method[3:]:
        return f"HD +{method[3:]}"
    return DRAFTER_LABELS.get(method, method)


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source)


def ordered_sources(sources) -> list[str]:
    present = set(sources)
    return [s for s in SOURCE_LABELS if s in present] + sorted(present - set(SOURCE_LABELS))


def is_beyond_the_paper(drafter: str) -> bool:
    return split_run_label(drafter)[0] in BEYOND_THE_PAPER


def drafter_label(drafter: str) -> str:
    """A run's label: its method, and its budget unless that is the paper's (``PLD @auto``)."""
    method, budget = split_run_label(drafter)
    label = method_label(method)
    return label if budget in ("paper", NO_BUDGET) else f"{label} @{budget}"


def budget_block(budget: str) -> str:
    return BUDGET_BLOCKS.get(budget, f"Fixed budget ({budget})")


def temperature_text(temperature: float) -> str:
    return f"T={float(temperature):g}"


def budget_rank(budget: str) -> tuple[int, int]:
    """AR, then the paper's budgets, the automatic one, fixed numbers in order."""
    if budget == NO_BUDGET:
        return (0, 0)
    if budget in BUDGET_BLOCKS:
        return (1 + list(BUDGET_BLOCKS).index(budget), 0)
    return (3, int(budget)) if budget.isdigit() else (4, 0)


def _method_rank(method: str) -> tuple[int, str]:
    """The paper's order with each variant after its original; HD's ablations after HD."""
    if method in DRAFTER_LABELS:
        return (2 * list(DRAFTER_LABELS).index(method), "")
    if method[:3] in ("hd-", "hd+"):
        return (2 * list(DRAFTER_LABELS).index("hd") + 1, method)
    return (2 * len(DRAFTER_LABELS), method)


def ordered_drafters(drafters: Iterable[str]) -> list[str]:
    """AR first, then per budget block the paper's order, variants after their originals,
    then anything else by name."""

    def key(drafter: str):
        method, budget = split_run_label(drafter)
        return (budget_rank(budget), _method_rank(method), drafter)

    return sorted(set(drafters), key=key)


def ordered_categories(categories: Iterable[str]) -> list[str]:
    present = set(categories)
    known = [c for c in CATEGORIES if c in present]
    rest = sorted(present - set(known) - {"overall"})
    return known + rest + (["overall"] if "overall" in present else [])


def drafter_colors(drafters: Iterable[str]) -> dict[str, str]:
    """A method's colour, a lighter one for its runs at other than the paper's budget."""
    spare = cycle(SPARE_COLORS)
    colors = {}
    for drafter in ordered_drafters(drafters):
        method, budget = split_run_label(drafter)
        color = DRAFTER_COLORS.get(method) or next(spare)
        colors[drafter] = color if budget in ("paper", NO_BUDGET) else _lighter(color)
    return colors


def _lighter(color: str, share: float = 0.45) -> str:
    """``color`` mixed with ``share`` white."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * share):02x}" for c in (red, green, blue))


def is_baseline(drafter: str) -> bool:
    return drafter == BASELINE

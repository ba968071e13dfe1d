"""The report's figures, sized for a paper: 3.3 in for one column, 7 in for two, 8 pt text.

Figures are built as bare ``matplotlib.figure.Figure`` objects (no pyplot), so saving them
goes through Agg with no global figure state and the notebook can display the same objects.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from spec_bench.metrics import BASELINE
from spec_bench.report import knob_figures
from spec_bench.report.labels import (
    SOURCE_COLORS,
    SPARE_COLORS,
    budget_rank,
    category_label,
    drafter_colors,
    drafter_label,
    is_beyond_the_paper,
    ordered_categories,
    ordered_drafters,
    source_label,
    temperature_text,
)
from spec_bench.report.sections import share_columns
from spec_bench.report.tables import metric_grid
from spec_bench.run_names import NO_BUDGET

COLUMN_WIDTH = 3.3
PAGE_WIDTH = 7.0
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    # TrueType in PDFs: editable text, and accepted by publishers that reject Type 3 fonts.
    "pdf.fonttype": 42,
}
TEMPERATURE_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#8172b3")
TEMPERATURE_MARKERS = ("o", "^", "s", "D")
SPEEDUP_LABEL = "Speedup over AR (×)"


def _methods(summary: pd.DataFrame) -> list[str]:
    """The runs the comparison figures show: every method but AR and the knob sweeps."""
    compared = summary[summary.knobs == "{}"] if "knobs" in summary else summary
    return [d for d in ordered_drafters(compared.drafter) if d != BASELINE]


def _errors(values, low, high) -> np.ndarray | None:
    """Error bar lengths below and above each value (none where the interval is missing)."""
    values, low, high = (np.asarray(a, dtype=float) for a in (values, low, high))
    below, above = np.nan_to_num(values - low), np.nan_to_num(high - values)
    return np.clip(np.vstack([below, above]), 0, None)


ERROR_STYLE = {"elinewidth": 0.6, "capsize": 1.5, "ecolor": "0.2"}


def _ar_line(ax, label: str | None = "AR") -> None:
    ax.axhline(1.0, color="0.35", linestyle="--", linewidth=0.8, label=label, zorder=0)


def bar_offsets(count: int, width: float = 0.8) -> tuple[np.ndarray, float]:
    """Where `count` bars sharing a group `width` wide sit around its centre, and how wide each is."""
    bar = width / max(count, 1)
    return (np.arange(count) - (count - 1) / 2) * bar, bar


def _set_overall_apart(ax, categories: list[str]) -> None:
    if len(categories) > 1 and categories[-1] == "overall":
        ax.axvline(len(categories) - 1.5, color="0.75", linewidth=0.6)


def speedup_by_category(summary: pd.DataFrame) -> Figure | None:
    """Grouped bars: speedup per category (and overall) per method, a panel per temperature."""
    methods = _methods(summary)
    if not methods:
        return None
    temperatures = sorted(summary.temperature.unique())
    categories = ordered_categories(summary.category)
    colors = drafter_colors(summary.drafter)
    fig = Figure(figsize=(PAGE_WIDTH, 0.5 + 1.8 * len(temperatures)), layout="constrained")
    axes = fig.subplots(len(temperatures), 1, sharex=True, squeeze=False)[:, 0]
    x = np.arange(len(categories))
    offsets, bar = bar_offsets(len(methods))
    for ax, temperature in zip(axes, temperatures):
        at_t = summary[summary.temperature == temperature]
        grid, low, high = (metric_grid(at_t, column) for column in ("speedup", "speedup_lo", "speedup_hi"))
        for offset, method in zip(offsets, methods):
            if method not in grid.index:
                continue
            values = grid.loc[method].reindex(categories)
            errors = _errors(
                values, low.loc[method].reindex(categories), high.loc[method].reindex(categories)
            )
            ax.bar(
                x + offset,
                values,
                bar,
                color=colors[method],
                label=drafter_label(method),
                yerr=errors,
                error_kw=ERROR_STYLE,
            )
        _ar_line(ax)
        _set_overall_apart(ax, categories)
        ax.set_ylabel(SPEEDUP_LABEL)
        ax.set_title(temperature_text(temperature), loc="left")
    axes[-1].set_xticks(x, [category_label(c) for c in categories])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels), frameon=False)
    return fig


def _overall_by_temperature(summary: pd.DataFrame, metric: str, ylabel: str) -> Figure | None:
    methods = _methods(summary)
    if not methods:
        return None
    overall = summary[summary.category == "overall"]
    temperatures = sorted(overall.temperature.unique())
    fig = Figure(figsize=(COLUMN_WIDTH, 2.3), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(methods))
    offsets, bar = bar_offsets(len(temperatures))
    for i, (offset, temperature) in enumerate(zip(offsets, temperatures)):
        rows = overall[overall.temperature == temperature].set_index("drafter").reindex(methods)
        ax.bar(
            x + offset,
            rows[metric],
            bar,
            color=TEMPERATURE_COLORS[i % len(TEMPERATURE_COLORS)],
            label=temperature_text(temperature),
            yerr=_errors(rows[metric], rows[f"{metric}_lo"], rows[f"{metric}_hi"]),
            error_kw=ERROR_STYLE,
        )
    _ar_line(ax)
    # Past four names, upright labels collide at column width.
    slanted = {"rotation": 30, "ha": "right", "rotation_mode": "anchor"} if len(methods) > 4 else {}
    ax.set_xticks(x, [drafter_label(m) for m in methods], **slanted)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, ncol=len(temperatures) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def mat_by_drafter(summary: pd.DataFrame) -> Figure | None:
    """Overall mean accepted tokens per method, a bar per temperature."""
    return _overall_by_temperature(summary, "mat", "MAT (tokens per step)")


def speedup_by_temperature(summary: pd.DataFrame) -> Figure | None:
    """Overall speedup per method at each temperature (T=0 next to T=1)."""
    if summary.temperature.nunique() < 2:
        return None
    return _overall_by_temperature(summary, "speedup", SPEEDUP_LABEL)


def speedup_vs_mat(summary: pd.DataFrame) -> Figure | None:
    """Each method's speedup against its MAT: small points per category, large overall."""
    methods = _methods(summary)
    if not methods:
        return None
    temperatures = sorted(summary.temperature.unique())
    colors = drafter_colors(summary.drafter)
    fig = Figure(figsize=(COLUMN_WIDTH, 2.6), layout="constrained")
    ax = fig.subplots()
    for i, temperature in enumerate(temperatures):
        marker = TEMPERATURE_MARKERS[i % len(TEMPERATURE_MARKERS)]
        for method in methods:
            rows = summary[(summary.drafter == method) & (summary.temperature == temperature)]
            per_category = rows[rows.category != "overall"]
            overall = rows[rows.category == "overall"]
            ax.scatter(
                per_category.mat, per_category.speedup, s=10, marker=marker, color=colors[method], alpha=0.35
            )
            ax.errorbar(
                overall.mat,
                overall.speedup,
                xerr=_errors(overall.mat, overall.mat_lo, overall.mat_hi),
                yerr=_errors(overall.speedup, overall.speedup_lo, overall.speedup_hi),
                fmt="none",
                **ERROR_STYLE,
                zorder=1,
            )
            ax.scatter(
                overall.mat,
                overall.speedup,
                s=40,
                marker=marker,
                color=colors[method],
                edgecolors="black",
                zorder=2,
            )
    _ar_line(ax, label=None)
    ax.set_xlabel("MAT (tokens per step)")
    ax.set_ylabel(SPEEDUP_LABEL)
    method_handles = [
        Line2D([], [], marker="o", linestyle="", color=colors[m], label=drafter_label(m)) for m in methods
    ]
    temperature_handles = [
        Line2D(
            [],
            [],
            marker=TEMPERATURE_MARKERS[i % len(TEMPERATURE_MARKERS)],
            linestyle="",
            color="0.3",
            label=temperature_text(t),
        )
        for i, t in enumerate(temperatures)
    ]
    size_handles = [
        Line2D([], [], marker="o", linestyle="", markersize=3, color="0.6", label="category"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=6,
            color="0.6",
            markeredgecolor="black",
            label="overall",
        ),
    ]
    ax.legend(
        handles=method_handles + temperature_handles + size_handles,
        frameon=False,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        handletextpad=0.2,
    )
    return fig


def source_shares_figure(shares: pd.DataFrame) -> Figure | None:
    """Stacked bars: each source's share of a hierarchy's accepted draft tokens per category,
    a panel per hierarchy run and temperature."""
    if shares.empty:
        return None
    sources = share_columns(shares)
    panels = list(shares.groupby(["drafter", "temperature"], sort=False))
    panels.sort(key=lambda item: (ordered_drafters(shares.drafter).index(item[0][0]), item[0][1]))
    fig = Figure(figsize=(PAGE_WIDTH, 0.5 + 1.5 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    categories = ordered_categories(shares.category)
    x = np.arange(len(categories))
    spare = iter(SPARE_COLORS * 4)
    colors = {source: SOURCE_COLORS.get(source) or next(spare) for source in sources}
    for ax, ((drafter, temperature), part) in zip(axes, panels):
        part = part.set_index("category").reindex(categories)
        bottom = np.zeros(len(categories))
        for source in sources:
            share = 100 * part[source].fillna(0.0).to_numpy()
            ax.bar(x, share, 0.6, bottom=bottom, color=colors[source], label=source_label(source))
            bottom += share
        _set_overall_apart(ax, categories)
        ax.set_ylim(0, 100)
        ax.set_ylabel("Accepted drafts (%)")
        ax.set_title(f"{drafter_label(drafter)}, {temperature_text(temperature)}", loc="left")
    axes[-1].set_xticks(x, [category_label(c) for c in categories])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels), frameon=False)
    return fig


# name: (builder, why it can be missing); each is drawn per budget mode and group of methods.
COMPARISONS: dict[str, tuple[Callable[[pd.DataFrame], Figure | None], str]] = {
    "speedup_by_category": (speedup_by_category, "no method besides AR"),
    "mat_by_drafter": (mat_by_drafter, "no method besides AR"),
    "speedup_t0_vs_t1": (speedup_by_temperature, "fewer than two temperatures"),
    "speedup_vs_mat": (speedup_vs_mat, "no method besides AR"),
}
SOURCE_FIGURE = "source_shares"


def comparison_groups(summary: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(name suffix, runs) per budget mode and group: the published methods with our variants
    and ablations (no suffix at the paper's budgets), and the drafters beyond the paper
    beside HD (``_beyond``), AR in each."""
    groups = []
    ar = summary[summary.drafter == BASELINE]
    budgets = sorted(set(summary.budget) - {NO_BUDGET}, key=budget_rank)
    for budget in budgets:
        at_budget = summary[summary.budget == budget]
        beyond = at_budget.drafter.map(is_beyond_the_paper)
        tag = "" if budget == "paper" else f"_{budget}"
        groups.append((tag, pd.concat([ar, at_budget[~beyond]])))
        if beyond.any():
            reference = at_budget[at_budget.method == "hd"]
            groups.append((f"{tag}_beyond", pd.concat([ar, reference, at_budget[beyond]])))
    return groups or [("", summary)]


def build_figures(summary: pd.DataFrame, shares: pd.DataFrame) -> tuple[dict[str, Figure], list[str]]:
    """Every figure that applies, named (with the model when the root holds several),
    and a note for each that does not."""
    figures, notes = {}, []
    models = sorted(summary.model.unique())
    with matplotlib.rc_context(STYLE):
        for model in models:
            suffix = f"_{model}" if len(models) > 1 else ""
            of_model = summary[summary.model == model]
            for tag, runs in comparison_groups(of_model):
                for name, (build, missing) in COMPARISONS.items():
                    figure = build(runs)
                    if figure is None:
                        notes.append(f"{name}{tag}{suffix}: skipped, {missing}")
                    else:
                        figures[name + tag + suffix] = figure
            figure = source_shares_figure(shares[shares.model == model])
            if figure is None:
                notes.append(
                    f"{SOURCE_FIGURE}{suffix}: skipped, no run drafted from several labelled sources"
                )
            else:
                figures[SOURCE_FIGURE + suffix] = figure
            for name, figure in knob_figures.knob_figures(of_model).items():
                figures[name + suffix] = figure
    return figures, notes


def save_figures(figures: dict[str, Figure], folder: Path) -> list[Path]:
    paths = []
    with matplotlib.rc_context(STYLE):
        for name, figure in figures.items():
            for extension in ("png", "pdf"):
                path = Path(folder) / f"{name}.{extension}"
                figure.savefig(path, dpi=200)
                paths.append(path)
    return paths

"""The report's figures, sized for a paper: 3.3 in for one column, 7 in for two, 8 pt text.

Figures are built as bare ``matplotlib.figure.Figure`` objects (no pyplot), so saving them
goes through Agg with no global figure state and the notebook can display the same objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from spec_bench.metrics import BASELINE
from spec_bench.report.labels import (
    SOURCE_LABELS,
    category_label,
    drafter_colors,
    drafter_label,
    ordered_categories,
    ordered_drafters,
    temperature_text,
)
from spec_bench.report.tables import SOURCES, metric_grid

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
SOURCE_COLORS = {"W": "#4c72b0", "S": "#55a868", "L": "#c44e52"}
SPEEDUP_LABEL = "Speedup over AR (×)"


def _methods(summary: pd.DataFrame) -> list[str]:
    """The runs the comparison figures show: every method but AR and the knob sweeps."""
    compared = summary[summary.knobs == "{}"] if "knobs" in summary else summary
    return [d for d in ordered_drafters(compared.drafter) if d != BASELINE]


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
        grid = metric_grid(summary[summary.temperature == temperature], "speedup")
        for offset, method in zip(offsets, methods):
            values = grid.loc[method].reindex(categories) if method in grid.index else np.full(len(x), np.nan)
            ax.bar(x + offset, values, bar, color=colors[method], label=drafter_label(method))
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
        rows = overall[overall.temperature == temperature].set_index("drafter")[metric]
        ax.bar(
            x + offset,
            rows.reindex(methods),
            bar,
            color=TEMPERATURE_COLORS[i % len(TEMPERATURE_COLORS)],
            label=temperature_text(temperature),
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
            ax.scatter(
                overall.mat, overall.speedup, s=40, marker=marker, color=colors[method], edgecolors="black"
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
    """Stacked bars: each HD database's share of accepted draft tokens per category, a
    panel per HD run and temperature."""
    if shares.empty:
        return None
    panels = list(shares.groupby(["drafter", "temperature"], sort=False))
    panels.sort(key=lambda item: (ordered_drafters(shares.drafter).index(item[0][0]), item[0][1]))
    fig = Figure(figsize=(PAGE_WIDTH, 0.5 + 1.5 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    categories = ordered_categories(shares.category)
    x = np.arange(len(categories))
    for ax, ((drafter, temperature), part) in zip(axes, panels):
        part = part.set_index("category").reindex(categories)
        bottom = np.zeros(len(categories))
        for source in SOURCES:
            share = 100 * part[source].fillna(0.0).to_numpy()
            ax.bar(x, share, 0.6, bottom=bottom, color=SOURCE_COLORS[source], label=SOURCE_LABELS[source])
            bottom += share
        _set_overall_apart(ax, categories)
        ax.set_ylim(0, 100)
        ax.set_ylabel("Accepted drafts (%)")
        ax.set_title(f"{drafter_label(drafter)}, {temperature_text(temperature)}", loc="left")
    axes[-1].set_xticks(x, [category_label(c) for c in categories])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=len(labels), frameon=False)
    return fig


def knob_figures(summary: pd.DataFrame) -> dict[str, Figure]:
    """Per knob sweep (runs of one conf/experiment/, the same knobs) and temperature: overall
    speedup (top) and MAT (bottom) against each knob, a line per setting of the others."""
    swept = (
        summary[(summary.knobs != "{}") & (summary.category == "overall")]
        if "knobs" in summary
        else summary[:0]
    )
    figures = {}
    rows = swept.assign(_knobs=swept.knobs.map(json.loads))
    keysets = {tuple(sorted(knobs)) for knobs in rows._knobs}
    for keys in sorted(keysets):
        part = rows[rows._knobs.map(lambda knobs, keys=keys: tuple(sorted(knobs)) == keys)]
        for temperature in sorted(part.temperature.unique()):
            at_t = part[part.temperature == temperature]
            fig = Figure(figsize=(PAGE_WIDTH, 3.2), layout="constrained")
            axes = fig.subplots(2, len(keys), squeeze=False)
            for column, knob in enumerate(keys):
                others = [k for k in keys if k != knob]
                groups = at_t.groupby(
                    at_t._knobs.map(lambda knobs, others=others: str([knobs[k] for k in others]))
                )
                for label, group in groups:
                    group = group.assign(_x=group._knobs.map(lambda knobs, knob=knob: knobs[knob]))
                    group = group.sort_values("_x", key=lambda values: values.map(_sortable))
                    for row, metric in enumerate(("speedup", "mat")):
                        ax = axes[row, column]
                        x = [str(value) for value in group._x]
                        ax.plot(
                            x,
                            group[metric],
                            marker="o",
                            linewidth=0.8,
                            label=f"{', '.join(others)} = {label}",
                        )
                axes[0, column].set_title(knob, loc="left")
                axes[1, column].set_xlabel(knob)
            axes[0, 0].set_ylabel(SPEEDUP_LABEL)
            axes[1, 0].set_ylabel("MAT")
            for ax in axes[0]:
                _ar_line(ax, None)
            name = "knobs_" + "_".join(keys).lower() + f"_t{temperature:g}"
            fig.suptitle(f"{temperature_text(temperature)}: overall, by knob", x=0.01, ha="left")
            figures[name] = fig
    return figures


def _sortable(value):
    """Knob values in order: numbers by size, the rest (None, names) after, by text."""
    return (0, float(value), "") if isinstance(value, int | float) else (1, 0.0, str(value))


FIGURES: dict[str, tuple[Callable[..., Figure | None], str, str]] = {
    # name: (builder, input, why it can be missing)
    "speedup_by_category": (speedup_by_category, "summary", "no method besides AR"),
    "mat_by_drafter": (mat_by_drafter, "summary", "no method besides AR"),
    "speedup_t0_vs_t1": (speedup_by_temperature, "summary", "fewer than two temperatures"),
    "speedup_vs_mat": (speedup_vs_mat, "summary", "no method besides AR"),
    "hd_sources": (
        source_shares_figure,
        "shares",
        "no per-source labels (accepted_by_source with W/S/L) in these runs",
    ),
}


def build_figures(summary: pd.DataFrame, shares: pd.DataFrame) -> tuple[dict[str, Figure], list[str]]:
    """Every figure that applies, named (with the model when the root holds several),
    and a note for each that does not."""
    figures, notes = {}, []
    models = sorted(summary.model.unique())
    with matplotlib.rc_context(STYLE):
        for model in models:
            suffix = f"_{model}" if len(models) > 1 else ""
            inputs = {"summary": summary[summary.model == model], "shares": shares[shares.model == model]}
            for name, (build, source, missing) in FIGURES.items():
                figure = build(inputs[source])
                if figure is None:
                    notes.append(f"{name}{suffix}: skipped, {missing}")
                else:
                    figures[name + suffix] = figure
            for name, figure in knob_figures(inputs["summary"]).items():
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

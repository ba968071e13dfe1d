"""Figures of a knob sweep (``python run.py +experiment=<method>_knobs --multirun``): the
runs of one experiment share their knobs (the config's ``knobs:``), and the overall speedup and
MAT are drawn against each knob, a line per setting of the others."""

from __future__ import annotations

import json

import pandas as pd
from matplotlib.figure import Figure

from spec_bench.report.labels import temperature_text

PAGE_WIDTH = 7.0
SPEEDUP_LABEL = "Speedup over AR (×)"


def knob_figures(summary: pd.DataFrame) -> dict[str, Figure]:
    """Per knob sweep (runs of one conf/experiment/, the same knobs) and temperature: overall
    speedup (top) and MAT (bottom) against each knob, a line per setting of the others."""
    if "knobs" not in summary:
        return {}
    swept = summary[(summary.knobs != "{}") & (summary.category == "overall")]
    rows = swept.assign(_knobs=swept.knobs.map(json.loads))
    figures = {}
    for keys in sorted({tuple(sorted(knobs)) for knobs in rows._knobs}):
        part = rows[rows._knobs.map(lambda knobs, keys=keys: tuple(sorted(knobs)) == keys)]
        for temperature in sorted(part.temperature.unique()):
            fig = knob_figure(part[part.temperature == temperature], keys)
            fig.suptitle(f"{temperature_text(temperature)}: overall, by knob", x=0.01, ha="left")
            figures["knobs_" + "_".join(keys).lower() + f"_t{temperature:g}"] = fig
    return figures


def knob_figure(part: pd.DataFrame, keys: tuple[str, ...]) -> Figure:
    fig = Figure(figsize=(PAGE_WIDTH, 3.2), layout="constrained")
    axes = fig.subplots(2, len(keys), squeeze=False)
    for column, knob in enumerate(keys):
        others = [k for k in keys if k != knob]
        setting = part._knobs.map(lambda knobs, others=others: ", ".join(f"{k}={knobs[k]}" for k in others))
        for label, group in part.groupby(setting):
            group = group.assign(_x=group._knobs.map(lambda knobs, knob=knob: knobs[knob]))
            group = group.sort_values("_x", key=lambda values: values.map(_sortable))
            x = [str(value) for value in group._x]
            for row, metric in enumerate(("speedup", "mat")):
                axes[row, column].plot(x, group[metric], marker="o", linewidth=0.8, label=label or None)
        axes[0, column].set_title(knob, loc="left")
        axes[1, column].set_xlabel(knob)
        if others:
            axes[0, column].legend(frameon=False, fontsize=6, loc="best")
        axes[0, column].axhline(1.0, color="0.35", linestyle="--", linewidth=0.8, zorder=0)
    axes[0, 0].set_ylabel(SPEEDUP_LABEL)
    axes[1, 0].set_ylabel("MAT")
    return fig


def _sortable(value):
    """Knob values in order: numbers by size, the rest (None, names) after, by text."""
    return (0, float(value), "") if isinstance(value, int | float) else (1, 0.0, str(value))

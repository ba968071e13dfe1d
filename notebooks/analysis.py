# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Speculative decoding on Spec-Bench: a closer look
#
# The report's tables and figures for one runs root, then what they average away: each
# question's speedup and the distribution of accepted lengths behind each MAT.
#
# This file (`notebooks/analysis.py`, jupytext percent format) is the source; the paired
# `analysis.ipynb` follows it (`jupytext --sync notebooks/analysis.py`). Point it at any
# runs root with the environment variable `HD_RUNS_ROOT`, or edit the parameters cell.

# %%
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib_inline.backend_inline import set_matplotlib_formats

from spec_bench.metrics import BASELINE, question_speedups
from spec_bench.report import figures, load_root, sections, tables
from spec_bench.report.labels import (
    category_label,
    drafter_colors,
    drafter_label,
    ordered_categories,
    ordered_drafters,
    temperature_text,
)

# The report's figures are bare Figure objects (no pyplot); show them as PNGs.
set_matplotlib_formats("png")

# %% tags=["parameters"]
RUNS_ROOT = os.environ.get("HD_RUNS_ROOT", "runs/quick/smollm2_135m")


# %%
def repo_root() -> Path:
    """The checkout this notebook lives in, wherever the kernel was started."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "run.py").is_file():
            return folder
    return Path.cwd()


root = Path(RUNS_ROOT) if Path(RUNS_ROOT).is_absolute() else repo_root() / RUNS_ROOT
runs = load_root(root)
frame, summary = runs.frame, runs.summary
print(f"{len(runs.folders)} runs, {len(frame)} answered questions under {root}")
if runs.warning:
    display(Markdown(f"> **{runs.warning}**"))

# %% [markdown]
# ## The paper's tables
#
# Speedup over AR and mean accepted tokens (MAT) per category; best method per column in
# bold, AR excluded.

# %%
display(Markdown(tables.paper_markdown(summary)))

# %% [markdown]
# ## Where the time goes
#
# A method with a high MAT but a slow drafter, or a verifier that pays for large trees,
# shows here: the share of wall time spent drafting, in the model's forward, accepting,
# and on bookkeeping.

# %%
display(Markdown(sections.time_split_markdown(sections.time_split(frame))))

# %% [markdown]
# ## Figures
#
# The same figures the report writes to `<root>/report/`.

# %%
shares = sections.source_shares(frame)
built, notes = figures.build_figures(summary, shares)
with matplotlib.rc_context(figures.STYLE):
    for name, figure in built.items():
        print(name)
        display(figure)
for note in notes:
    print(f"note: {note}")

# %% [markdown]
# ## Per question
#
# A category's speedup is a mean over its questions; the spread below shows whether one
# lucky question carries it. Each point is one question's tokens/s over AR's on the same
# question (AR decoded beside it when the run was timed `paired`), with its interval over
# repeats (`bench.repeats`; a bare point when decoded once); the shaded band is the
# category's 95% interval from the report.

# %%
per_question = question_speedups(frame)
display(
    per_question.pivot_table(
        index=["model", "temperature", "category", "question_id"], columns="drafter", values="speedup"
    ).round(2)
)


# %%
def per_question_figure(part: pd.DataFrame, bands: pd.DataFrame) -> Figure:
    """One point per question and method, methods side by side within each category."""
    methods = [d for d in ordered_drafters(part.drafter) if d != BASELINE]
    categories = ordered_categories(part.category)
    colors = drafter_colors(part.drafter)
    fig = Figure(figsize=(figures.PAGE_WIDTH, 2.4), layout="constrained")
    ax = fig.subplots()
    offsets, width = figures.bar_offsets(len(methods))
    for offset, method in zip(offsets, methods):
        rows = part[part.drafter == method]
        x = np.array([categories.index(c) for c in rows.category]) + offset
        errors = figures._errors(rows.speedup, rows.speedup_lo, rows.speedup_hi)
        ax.errorbar(x, rows.speedup, yerr=errors, fmt="none", **figures.ERROR_STYLE)
        ax.scatter(x, rows.speedup, s=12, color=colors[method], label=drafter_label(method), zorder=3)
        band = bands[bands.drafter == method].set_index("category")
        for category in categories:
            if category in band.index:
                center = categories.index(category) + offset
                low, high = band.at[category, "speedup_lo"], band.at[category, "speedup_hi"]
                ax.fill_between(
                    [center - width / 2, center + width / 2], low, high, color=colors[method], alpha=0.2
                )
    ax.axhline(1.0, color="0.35", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(categories)), [category_label(c) for c in categories])
    ax.set_ylabel(figures.SPEEDUP_LABEL)
    ax.legend(frameon=False, ncol=len(methods), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


with matplotlib.rc_context(figures.STYLE):
    for (model, temperature), part in per_question.groupby(["model", "temperature"]):
        print(f"{model}, {temperature_text(temperature)}")
        bands = summary[(summary.model == model) & (summary.temperature == temperature)]
        display(per_question_figure(part, bands))

# %% [markdown]
# ## Accepted lengths
#
# MAT is the mean of these histograms (bonus token included, so AR is all ones). A method
# whose mass sits at 1 rarely has its drafts accepted; a long tail is where speedups come
# from.


# %%
def accepted_lengths_figure(part: pd.DataFrame) -> Figure:
    methods = [d for d in ordered_drafters(part.drafter) if d != BASELINE]
    colors = drafter_colors(part.drafter)
    fig = Figure(figsize=(figures.PAGE_WIDTH, 1.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(methods), 1), sharey=True))
    for ax, method in zip(axes, methods):
        lengths = [n for lengths in part[part.drafter == method].accept_lengths for n in lengths]
        bins = np.arange(0.5, max(lengths, default=1) + 1.5)
        ax.hist(
            lengths,
            bins=bins,
            color=colors[method],
            weights=np.full(len(lengths), 100 / max(len(lengths), 1)),
        )
        ax.set_title(f"{drafter_label(method)} (MAT {np.mean(lengths):.2f})", loc="left")
        ax.set_xlabel("Tokens accepted per step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("Steps (%)")
    return fig


with matplotlib.rc_context(figures.STYLE):
    for (model, temperature), part in frame.groupby(["model", "temperature"]):
        print(f"{model}, {temperature_text(temperature)}")
        display(accepted_lengths_figure(part))

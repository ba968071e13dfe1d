"""The paper's tables from the summary and per-question frames, as Markdown and LaTeX.

Speedup and MAT: one table per model x temperature, a row per run, a column per category
plus overall, each number with its 95% interval (``1.56 [1.41, 1.70]``, a bootstrap over
questions). AR comes first, once; then one block per budget mode (the methods at their
published budgets, then at the automatic budget, then any fixed budget), labelled. Within
each block the best method of a column is bold only when its interval excludes the
runner-up's value; AR (the reference) never. Below each table, a sentence names the methods
whose overall intervals overlap HD's (or the best method's): those are not told apart.
"""

from __future__ import annotations

import math

import pandas as pd

from spec_bench.metrics import BASELINE
from spec_bench.report.labels import (
    budget_block,
    budget_rank,
    category_label,
    drafter_label,
    method_label,
    ordered_categories,
    ordered_drafters,
    temperature_text,
)
from spec_bench.run_names import NO_BUDGET, split_run_label

METRICS = {"speedup": "Speedup over AR (×)", "mat": "Mean accepted tokens (MAT)"}
LATEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}"}


def metric_grid(block: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Runs x categories of one model and temperature."""
    grid = block.pivot_table(
        index="drafter", columns="category", values=metric, aggfunc="first", dropna=False
    )
    return grid.reindex(index=ordered_drafters(grid.index), columns=ordered_categories(grid.columns))


def metric_grids(
    block: pd.DataFrame, metric: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """The values and, when the summary has them, the interval bounds (``<metric>_lo/_hi``)."""
    grid = metric_grid(block, metric)
    if f"{metric}_lo" not in block:
        return grid, None, None
    bounds = [metric_grid(block, f"{metric}_{end}").reindex_like(grid) for end in ("lo", "hi")]
    return grid, bounds[0], bounds[1]


def best_cells(
    grid: pd.DataFrame, low: pd.DataFrame | None = None, high: pd.DataFrame | None = None
) -> pd.DataFrame:
    """True where a run is the best of its column within its budget block; never for AR.
    With intervals, only when the best run's interval excludes the runner-up's value (a
    block of one run has no winner); without, every run at the best value as printed."""
    rounded = grid.round(2)
    mask = pd.DataFrame(False, index=grid.index, columns=grid.columns)
    budgets = pd.Series([split_run_label(d)[1] for d in grid.index], index=grid.index)
    for budget in budgets.unique():
        if budget == NO_BUDGET:
            continue
        block = rounded[budgets == budget].drop(index=BASELINE, errors="ignore")
        if low is None or high is None:
            mask.loc[block.index] = block.eq(block.max(), axis=1)
            continue
        for column in block.columns:
            values = grid.loc[block.index, column].dropna().sort_values(ascending=False)
            if len(values) < 2:
                continue
            best, runner_up = values.index[0], values.iloc[1]
            if not low.at[best, column] <= runner_up <= high.at[best, column]:
                mask.at[best, column] = True
    return mask


def blocks(summary: pd.DataFrame) -> list[tuple[str, float, pd.DataFrame]]:
    return [
        (model, temperature, part) for (model, temperature), part in summary.groupby(["model", "temperature"])
    ]


def number(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _cells(
    grid: pd.DataFrame, bold: str, low: pd.DataFrame | None = None, high: pd.DataFrame | None = None
) -> list[list[str]]:
    mask = best_cells(grid, low, high)
    rows = []
    for drafter in grid.index:
        cells = []
        for column in grid.columns:
            text = number(grid.at[drafter, column])
            if low is not None and high is not None and not _is_nan(low.at[drafter, column]):
                if drafter != BASELINE:
                    text += f" [{number(low.at[drafter, column])}, {number(high.at[drafter, column])}]"
            cells.append(bold.format(text) if mask.at[drafter, column] else text)
        rows.append(cells)
    return rows


def _is_nan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def budget_cell(drafter: str) -> str:
    budget = split_run_label(drafter)[1]
    return "—" if budget == NO_BUDGET else budget


def markdown_table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    rule = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(c, c) for c in str(text))


def paper_markdown(summary: pd.DataFrame) -> str:
    parts = [
        "## Speedup and mean accepted tokens",
        "",
        "AR once, then one block per budget: `paper` is what each method's authors verify per "
        "step, `auto` the cost-aware budget. Each number with its 95% interval, a paired "
        "bootstrap over questions; the best of a column and block is bold only when its "
        "interval excludes the runner-up's value (AR excluded).",
    ]
    for model, temperature, block in blocks(summary):
        parts += ["", f"### {model}, {temperature_text(temperature)}"]
        for metric, title in METRICS.items():
            grid, low, high = metric_grids(block, metric)
            header = ["Budget", "Method", *map(category_label, grid.columns)]
            defective = _defective(block)
            rows = [
                [
                    budget_cell(d),
                    drafter_label(split_run_label(d)[0]) + (" ✗ DEFECT" if d in defective else ""),
                    *cells,
                ]
                for d, cells in zip(grid.index, _cells(grid, "**{}**", low, high))
            ]
            parts += ["", title, "", markdown_table(header, rows, numeric_from=2)]
        parts += ["", *indistinguishable_sentences(block, temperature)]
    return "\n".join(parts) + "\n"


def _defective(block: pd.DataFrame) -> set[str]:
    if "defect_rate" not in block:
        return set()
    return set(block[(block.category == "overall") & (block.defect_rate > 0)].drafter)


def indistinguishable_sentences(block: pd.DataFrame, temperature: float) -> list[str]:
    """Per budget block: which methods' overall speedup intervals overlap HD's (or, without
    HD, the fastest method's): the runs cannot tell them apart."""
    overall = block[(block.category == "overall") & (block.drafter != BASELINE)]
    if "speedup_lo" not in overall:
        return []
    sentences = []
    for budget in sorted(overall.budget.unique(), key=budget_rank):
        runs = overall[(overall.budget == budget) & overall.speedup.notna()].set_index("method")
        if len(runs) < 2:
            continue
        anchor = "hd" if "hd" in runs.index else runs.speedup.idxmax()
        low, high = runs.at[anchor, "speedup_lo"], runs.at[anchor, "speedup_hi"]
        overlapping = [
            m
            for m in runs.index
            if m != anchor and runs.at[m, "speedup_lo"] <= high and low <= runs.at[m, "speedup_hi"]
        ]
        apart = [m for m in runs.index if m != anchor and m not in overlapping]
        name = method_label(anchor)
        text = f"{temperature_text(temperature)}, {budget_block(budget).lower()}: overall, "
        if overlapping:
            text += (
                f"{_names(overlapping)} cannot be told apart from {name} (their intervals overlap {name}'s)"
            )
        else:
            text += f"no method's interval overlaps {name}'s"
        if apart:
            text += f"; {_names(apart)} {'is' if len(apart) == 1 else 'are'} clearly different"
        sentences.append(text + ".")
    return sentences


def _names(methods: list[str]) -> str:
    labels = [method_label(m) for m in sorted(methods, key=lambda m: ordered_drafters([m, "ar"]).index(m))]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def paper_latex(summary: pd.DataFrame) -> str:
    """One booktabs table per model x temperature: a speedup panel over a MAT panel, each
    with AR, then a labelled block of rows per budget mode."""
    tables = [
        "% Needs \\usepackage{booktabs}. Intervals: 95%, bootstrap over questions. Bold: the best of a"
        " column and budget block whose interval excludes the runner-up's value (AR excluded)."
    ]
    for model, temperature, block in blocks(summary):
        columns = metric_grid(block, "speedup").columns
        width = len(columns) + 1
        header = " & ".join(["Method", *(latex_escape(category_label(c)) for c in columns)])
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{Speedup over AR and mean accepted tokens (MAT), {latex_escape(model)}, "
            rf"${temperature_text(temperature)}$.}}",
            rf"\begin{{tabular}}{{l{'r' * len(columns)}}}",
            r"\toprule",
            header + r" \\",
        ]
        for metric, title in METRICS.items():
            grid, low, high = metric_grids(block, metric)
            grid = grid.reindex(columns=columns)
            title = latex_escape(title).replace("×", r"$\times$")
            lines += [r"\midrule", rf"\multicolumn{{{width}}}{{l}}{{\textit{{{title}}}}} \\"]
            current, _beyond = None, False
            for drafter, cells in zip(grid.index, _cells(grid, r"\textbf{{{}}}", low, high)):
                method, budget = split_run_label(drafter)
                if budget != NO_BUDGET and budget != current:
                    current = budget
                    lines.append(
                        rf"\multicolumn{{{width}}}{{l}}{{\quad {latex_escape(budget_block(budget))}}} \\"
                    )
                lines.append(" & ".join([latex_escape(drafter_label(method)), *cells]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


def hd_fixes_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """HD as the official code drafts (``hd``), with each fix alone (``hd+<fix>``) and with
    all of them (``hd_fixed``), at the published budget; empty unless a fix ran beside hd."""
    fixes = summary.method.str.startswith("hd+") | (summary.method == "hd_fixed")
    chosen = summary[(summary.budget == "paper") & (fixes | (summary.method == "hd"))]
    if not (chosen.method != "hd").any() or not (chosen.method == "hd").any():
        return summary.iloc[0:0]
    return chosen


def hd_fixes_markdown(summary: pd.DataFrame) -> str:
    """The measured worth of each fix of the official HD behaviour (``make ablations``)."""
    chosen = hd_fixes_summary(summary)
    if chosen.empty:
        return ""
    parts = [
        "## HD: the official behaviour against each fix and all fixes",
        "",
        "`HD` drafts as the official code does; `HD +<fix>` changes one thing (conf/ablation/); "
        "`HD fixed` has every fix. Published budget; best per column in bold.",
    ]
    for model, temperature, block in blocks(chosen):
        parts += ["", f"### {model}, {temperature_text(temperature)}"]
        for metric, title in METRICS.items():
            grid, low, high = metric_grids(block, metric)
            header = ["Method", *map(category_label, grid.columns)]
            rows = [
                [drafter_label(d), *cells] for d, cells in zip(grid.index, _cells(grid, "**{}**", low, high))
            ]
            parts += ["", title, "", markdown_table(header, rows)]
    return "\n".join(parts) + "\n"

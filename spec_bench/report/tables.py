"""The paper's tables from the summary and per-question frames, as Markdown and LaTeX.

Speedup and MAT: one table per model x temperature, a row per run, a column per category
plus overall. AR comes first, once; then one block per budget mode (the methods at their
published budgets, then at the automatic budget, then any fixed budget), labelled. Within
each block the best method per column is bold; AR (the reference) never.
"""

from __future__ import annotations

import math

import pandas as pd

from spec_bench.metrics import BASELINE
from spec_bench.report.labels import (
    SOURCE_LABELS,
    budget_block,
    category_label,
    drafter_label,
    ordered_categories,
    ordered_drafters,
    temperature_text,
)
from spec_bench.run_names import NO_BUDGET, split_run_label

METRICS = {"speedup": "Speedup over AR (×)", "mat": "Mean accepted tokens (MAT)"}
# As the engine records them (spec_bench.engine.decode.PHASES; importing it would pull
# torch into a report that never needs it).
PHASES = ("draft", "forward", "accept", "bookkeeping")
SOURCES = tuple(SOURCE_LABELS)
LATEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}"}


def metric_grid(block: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Methods x categories of one model and temperature."""
    grid = block.pivot_table(
        index="drafter", columns="category", values=metric, aggfunc="first", dropna=False
    )
    return grid.reindex(index=ordered_drafters(grid.index), columns=ordered_categories(grid.columns))


def best_cells(grid: pd.DataFrame) -> pd.DataFrame:
    """True where a run has the best value of its column within its budget block, as
    printed (ties all bold); never for AR."""
    rounded = grid.round(2)
    mask = pd.DataFrame(False, index=grid.index, columns=grid.columns)
    budgets = pd.Series([split_run_label(d)[1] for d in grid.index], index=grid.index)
    for budget in budgets.unique():
        if budget == NO_BUDGET:
            continue
        block = rounded[budgets == budget].drop(index=BASELINE, errors="ignore")
        mask.loc[block.index] = block.eq(block.max(), axis=1)
    return mask


def blocks(summary: pd.DataFrame) -> list[tuple[str, float, pd.DataFrame]]:
    return [
        (model, temperature, part) for (model, temperature), part in summary.groupby(["model", "temperature"])
    ]


def _number(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _cells(grid: pd.DataFrame, bold: str) -> list[list[str]]:
    mask = best_cells(grid)
    rows = []
    for drafter in grid.index:
        cells = [_number(grid.at[drafter, c]) for c in grid.columns]
        cells = [bold.format(text) if mask.at[drafter, c] else text for text, c in zip(cells, grid.columns)]
        rows.append(cells)
    return rows


def _budget_cell(drafter: str) -> str:
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
        "step, `auto` the cost-aware budget. Best per column and block in bold (AR excluded).",
    ]
    for model, temperature, block in blocks(summary):
        parts += ["", f"### {model}, {temperature_text(temperature)}"]
        for metric, title in METRICS.items():
            grid = metric_grid(block, metric)
            header = ["Budget", "Method", *map(category_label, grid.columns)]
            rows = [
                [_budget_cell(d), drafter_label(split_run_label(d)[0]), *cells]
                for d, cells in zip(grid.index, _cells(grid, "**{}**"))
            ]
            parts += ["", title, "", markdown_table(header, rows, numeric_from=2)]
    return "\n".join(parts) + "\n"


def paper_latex(summary: pd.DataFrame) -> str:
    """One booktabs table per model x temperature: a speedup panel over a MAT panel, each
    with AR, then a labelled block of rows per budget mode."""
    tables = ["% Needs \\usepackage{booktabs}. Best per column and budget block in bold (AR excluded)."]
    for model, temperature, block in blocks(summary):
        grids = {metric: metric_grid(block, metric) for metric in METRICS}
        columns = grids["speedup"].columns
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
            grid = grids[metric].reindex(columns=columns)
            title = latex_escape(title).replace("×", r"$\times$")
            lines += [r"\midrule", rf"\multicolumn{{{width}}}{{l}}{{\textit{{{title}}}}} \\"]
            current = None
            for drafter, cells in zip(grid.index, _cells(grid, r"\textbf{{{}}}")):
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
            grid = metric_grid(block, metric)
            header = ["Method", *map(category_label, grid.columns)]
            rows = [[drafter_label(d), *cells] for d, cells in zip(grid.index, _cells(grid, "**{}**"))]
            parts += ["", title, "", markdown_table(header, rows)]
    return "\n".join(parts) + "\n"


def time_split(frame: pd.DataFrame) -> pd.DataFrame:
    """Where each run's wall time went, as fractions, and its milliseconds per token."""
    rows = []
    for (model, temperature, drafter), run in frame.groupby(["model", "temperature", "drafter"]):
        wall = float(run.wall_time_s.sum())
        spent = {phase: float(sum(t.get(phase, 0.0) for t in run.phase_times)) for phase in PHASES}
        share = {phase: spent[phase] / wall if wall else math.nan for phase in PHASES}
        rows.append(
            {
                "model": model,
                "temperature": temperature,
                "drafter": drafter,
                **share,
                # Outside every phase: clock overhead and the gaps between phases.
                "other": 1.0 - sum(share.values()) if wall else math.nan,
                "ms_per_token": 1000.0 * wall / run.new_tokens.sum() if run.new_tokens.sum() else math.nan,
            }
        )
    table = pd.DataFrame(rows, columns=["model", "temperature", "drafter", *PHASES, "other", "ms_per_token"])
    return _in_paper_order(table)


def _in_paper_order(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    rank = {d: i for i, d in enumerate(ordered_drafters(table.drafter))}
    ordered = table.assign(_rank=table.drafter.map(rank)).sort_values(["model", "temperature", "_rank"])
    return ordered.drop(columns="_rank").reset_index(drop=True)


def _time_split_rows(split: pd.DataFrame, percent: str) -> list[list[str]]:
    rows = []
    for row in split.itertuples(index=False):
        shares = [_number(100 * getattr(row, c), 1) + percent for c in (*PHASES, "other")]
        rows.append(
            [
                row.model,
                f"{row.temperature:g}",
                drafter_label(row.drafter),
                *shares,
                _number(row.ms_per_token),
            ]
        )
    return rows


TIME_SPLIT_HEADER = ["Model", "T", "Method", "Draft", "Forward", "Accept", "Bookkeeping", "Other", "ms/token"]


def time_split_markdown(split: pd.DataFrame) -> str:
    title = "## Where the time goes\n\nShare of wall time per phase, summed over all questions.\n\n"
    return title + markdown_table(TIME_SPLIT_HEADER, _time_split_rows(split, "%"), numeric_from=3) + "\n"


def time_split_latex(split: pd.DataFrame) -> str:
    header = " & ".join(TIME_SPLIT_HEADER[:-1] + [r"ms/token"]) + r" \\"
    body = [" & ".join(latex_escape(cell) for cell in row) + r" \\" for row in _time_split_rows(split, "%")]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\caption{Share of wall time per decoding phase.}",
        r"\begin{tabular}{llrrrrrrr}",
        r"\toprule",
        header,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def source_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run and category (and overall), each HD database's share of the accepted draft
    tokens; empty when no run labels its drafts W, S or L."""
    rows = []
    for (model, temperature, drafter), run in frame.groupby(["model", "temperature", "drafter"]):
        if not any(source in counts for counts in run.accepted_by_source for source in SOURCES):
            continue
        for category in [*ordered_categories(run.category), "overall"]:
            part = run if category == "overall" else run[run.category == category]
            counts = {s: sum(c.get(s, 0) for c in part.accepted_by_source) for s in SOURCES}
            drafted = sum(counts.values())
            rows.append(
                {
                    "model": model,
                    "temperature": temperature,
                    "drafter": drafter,
                    "category": category,
                    **{s: counts[s] / drafted if drafted else math.nan for s in SOURCES},
                    "drafted_tokens": drafted,
                }
            )
    return pd.DataFrame(
        rows, columns=["model", "temperature", "drafter", "category", *SOURCES, "drafted_tokens"]
    )


def source_shares_markdown(shares: pd.DataFrame) -> str:
    overall = _in_paper_order(shares[shares.category == "overall"])
    header = ["Model", "T", "Method", *(SOURCE_LABELS[s] for s in SOURCES), "Accepted drafts"]
    rows = [
        [
            row.model,
            f"{row.temperature:g}",
            drafter_label(row.drafter),
            *(_number(100 * getattr(row, s), 1) + "%" for s in SOURCES),
            str(row.drafted_tokens),
        ]
        for row in overall.itertuples(index=False)
    ]
    title = "## HD: accepted draft tokens by database\n\n"
    return title + markdown_table(header, rows, numeric_from=3) + "\n"


def environment_markdown(table: pd.DataFrame, warning: str | None) -> str:
    header = ["CPU", "GPU", "Device", "Threads", "torch", "transformers", "Runs"]
    columns = ["cpu", "gpu", "device", "torch_threads", "torch", "transformers", "runs"]
    rows = [[str(row[c]) for c in columns] for _, row in table.iterrows()]
    parts = ["## Environment", ""]
    if warning:
        parts += [f"> **{warning}**", ""]
    parts.append(
        markdown_table(header, rows, numeric_from=len(header) - 1) if rows else "No environment.json found."
    )
    return "\n".join(parts) + "\n"

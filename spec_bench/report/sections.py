"""The report's sections beside the paper's tables: its header (machine, dtype, timing,
corpora), the greedy checks, where the time goes, each source's share of a hierarchy's
accepted drafts, and the environment."""

from __future__ import annotations

import math

import pandas as pd

from spec_bench.metrics import BASELINE
from spec_bench.report.labels import (
    drafter_label,
    ordered_categories,
    ordered_drafters,
    ordered_sources,
    source_label,
    temperature_text,
)
from spec_bench.report.tables import budget_cell, latex_escape, markdown_table, number
from spec_bench.run_names import split_run_label

# As the engine records them (spec_bench.engine.decode.PHASES; importing it would pull
# torch into a report that never needs it).
PHASES = ("prefill", "draft", "forward", "accept", "bookkeeping")
# Drafters that learn across questions (their numbers depend on the questions' order).
STATEFUL_METHODS = ("token_recycling", "suffix", "suffix_tr", "hd_tr", "hd_suffix", "hd_suffix_tr")
# A single source of these still gets its share shown (HD's database ablations).
HD_DATABASES = ("W", "S", "L")


PAPER_CORPORA = "the paper: REST's UltraChat datastore; S from OASST1 prompts, 1,024-token answers"


def header_markdown(summary: pd.DataFrame, machines: pd.DataFrame, corpora: pd.DataFrame) -> str:
    """What every number below depends on: the machine, dtype and kernels, how AR was timed,
    and the corpora the databases came from (LIMA on the CPU profiles, not the paper's)."""
    lines = ["# Report", ""]
    for row in machines.itertuples(index=False):
        device = row.gpu if row.gpu not in (None, "-") else f"{row.cpu} ({row.device})"
        lines.append(f"- Machine: {device}; {row.dtype}, kernels {row.kernels}, {row.torch_threads} threads")
    timing = summary[summary.drafter != BASELINE].drop_duplicates("drafter").timing.value_counts()
    described = {"paired": "AR decoded beside each question", "separate": "the AR run's"}
    if not timing.empty:
        parts = [f"{described.get(kind, kind)} for {count} run(s)" for kind, count in timing.items()]
        lines.append(f"- AR timing (speedup's denominator): {'; '.join(parts)}")
    stateful = sorted(set(summary.method) & set(STATEFUL_METHODS))
    if stateful:
        names = ", ".join(drafter_label(m) for m in stateful)
        lines.append(
            f"- Kept across questions ({names}): Token Recycling's matrix and the suffix trees of earlier "
            "answers start empty, learn from the untimed warm-up on the first question, then from every "
            "question in file order (category by category, one run per process), as their authors run "
            "them; a different order gives other drafts (never other greedy tokens)"
        )
    for row in corpora.itertuples(index=False):
        model_db = (
            f"{row.model_db_prompts or 'all'} {row.model_db} prompts, {row.model_db_tokens}-token answers"
        )
        datastore = f"datastore (REST, HD's L) {row.datastore}"
        lines.append(f"- Corpora: {datastore}; model DB (HD's S) {model_db} ({PAPER_CORPORA})")
    return "\n".join(lines) + "\n"


def defective_runs(summary: pd.DataFrame) -> list[str]:
    """Runs with a greedy answer that differs from AR's by more than a near-tie."""
    overall = summary[(summary.category == "overall") & (summary.defect_rate > 0)]
    return [
        f"{drafter_label(row.drafter)} ({row.model}, {temperature_text(row.temperature)})"
        for row in overall.itertuples()
    ]


def defect_line(summary: pd.DataFrame) -> str | None:
    runs = defective_runs(summary)
    if not runs:
        return None
    return (
        f"DEFECT: {', '.join(runs)} produced greedy tokens that differ from AR's where AR's two "
        "candidates were not near-tied: a bug, not rounding (see Greedy checks)"
    )


def greedy_checks_markdown(summary: pd.DataFrame) -> str:
    """Per greedy run: the share of questions equal to AR's tokens, near-tied, and defective."""
    checked = summary[(summary.category == "overall") & summary.ar_match_rate.notna()]
    if checked.empty:
        return ""
    checked = in_paper_order(checked)
    header = ["Model", "T", "Budget", "Method", "Equal to AR", "Near-tie", "Defect"]
    rows = []
    for row in checked.itertuples(index=False):
        defect = f"**{100 * row.defect_rate:.0f}%**" if row.defect_rate > 0 else "0%"
        rows.append(
            [
                row.model,
                f"{row.temperature:g}",
                budget_cell(row.drafter),
                drafter_label(split_run_label(row.drafter)[0]),
                f"{100 * row.ar_match_rate:.0f}%",
                f"{100 * row.near_tie_rate:.0f}%",
                defect,
            ]
        )
    title = (
        "## Greedy checks\n\nShare of greedy answers equal to AR's tokens; of the others, near-ties "
        "(AR's two candidates within rounding of the dtype, where a batched forward may flip the "
        "argmax) and defects (anything else).\n\n"
    )
    return title + markdown_table(header, rows, numeric_from=4) + "\n"


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
    return in_paper_order(table)


def in_paper_order(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    rank = {d: i for i, d in enumerate(ordered_drafters(table.drafter))}
    ordered = table.assign(_rank=table.drafter.map(rank)).sort_values(["model", "temperature", "_rank"])
    return ordered.drop(columns="_rank").reset_index(drop=True)


def _time_split_rows(split: pd.DataFrame, percent: str) -> list[list[str]]:
    rows = []
    for row in split.itertuples(index=False):
        shares = [number(100 * getattr(row, c), 1) + percent for c in (*PHASES, "other")]
        rows.append(
            [
                row.model,
                f"{row.temperature:g}",
                drafter_label(row.drafter),
                *shares,
                number(row.ms_per_token),
            ]
        )
    return rows


TIME_SPLIT_HEADER = [
    "Model",
    "T",
    "Method",
    "Prefill",
    "Draft",
    "Forward",
    "Accept",
    "Bookkeeping",
    "Other",
    "ms/token",
]


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
        r"\begin{tabular}{llrrrrrrrr}",
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
    """Per hierarchy run (drafts from two sources or more, or HD's databases) and category
    (and overall), each source's share of the accepted draft tokens; one column per source."""
    runs = []
    for (model, temperature, drafter), run in frame.groupby(["model", "temperature", "drafter"]):
        labels = {label for counts in run.accepted_by_source for label in counts if label != "bonus"}
        if len(labels) >= 2 or labels & set(HD_DATABASES):
            runs.append((model, temperature, drafter, run, labels))
    sources = ordered_sources({label for *_, labels in runs for label in labels})
    rows = []
    for model, temperature, drafter, run, _ in runs:
        for category in [*ordered_categories(run.category), "overall"]:
            part = run if category == "overall" else run[run.category == category]
            counts = {s: sum(c.get(s, 0) for c in part.accepted_by_source) for s in sources}
            drafted = sum(counts.values())
            rows.append(
                {
                    "model": model,
                    "temperature": temperature,
                    "drafter": drafter,
                    "category": category,
                    **{s: counts[s] / drafted if drafted else math.nan for s in sources},
                    "drafted_tokens": drafted,
                }
            )
    return pd.DataFrame(
        rows, columns=["model", "temperature", "drafter", "category", *sources, "drafted_tokens"]
    )


def share_columns(shares: pd.DataFrame) -> list[str]:
    return [
        c
        for c in shares.columns
        if c not in ("model", "temperature", "drafter", "category", "drafted_tokens")
    ]


def source_shares_markdown(shares: pd.DataFrame) -> str:
    overall = in_paper_order(shares[shares.category == "overall"])
    sources = share_columns(shares)
    header = ["Model", "T", "Method", *(source_label(s) for s in sources), "Accepted drafts"]
    rows = [
        [
            row.model,
            f"{row.temperature:g}",
            drafter_label(row.drafter),
            *(
                "-"
                if math.isnan(getattr(row, s)) or not getattr(row, s)
                else number(100 * getattr(row, s), 1) + "%"
                for s in sources
            ),
            str(row.drafted_tokens),
        ]
        for row in overall.itertuples(index=False)
    ]
    title = (
        "## Hierarchies: accepted draft tokens by source\n\n"
        "Share of each run's accepted draft tokens that each source drafted (HD: W, S, L).\n\n"
    )
    return title + markdown_table(header, rows, numeric_from=3) + "\n"


def environment_markdown(table: pd.DataFrame, warning: str | None) -> str:
    header = ["CPU", "GPU", "Device", "dtype", "Kernels", "Threads", "torch", "transformers", "Runs"]
    columns = ["cpu", "gpu", "device", "dtype", "kernels", "torch_threads", "torch", "transformers", "runs"]
    rows = [[str(row[c]) for c in columns] for _, row in table.iterrows()]
    parts = ["## Environment", ""]
    if warning:
        parts += [f"> **{warning}**", ""]
    parts.append(
        markdown_table(header, rows, numeric_from=len(header) - 1) if rows else "No environment.json found."
    )
    return "\n".join(parts) + "\n"

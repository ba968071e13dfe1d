"""Everything ``python -m spec_bench.report <root>`` writes into ``<root>/report/``.

summary.csv, time_split.csv, tables.md (Markdown), tables.tex (booktabs) and a PNG + PDF
per figure. Runs are read with their shards merged and checked, so a lost or doubled
shard stops the report rather than skewing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from spec_bench.errors import HarnessError
from spec_bench.files import replaced_atomically, write_text_atomic
from spec_bench.metrics import find_runs, load_questions_frame, summarize
from spec_bench.report import figures, machines, sections, tables
from spec_bench.report.shards import profile_question_ids, read_run, shard_files


@dataclass
class RunsRoot:
    """What the report reads: per-question rows, the summary and the machines used."""

    root: Path
    folders: list[Path]
    frame: pd.DataFrame
    summary: pd.DataFrame
    environments: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def machines(self) -> pd.DataFrame:
        return machines.machines(self.environments)

    @property
    def corpora(self) -> pd.DataFrame:
        return machines.read_corpora(self.folders)

    @property
    def warning(self) -> str | None:
        return machines.mixed_machines_warning(self.machines)


@dataclass
class Report:
    folder: Path
    summary: pd.DataFrame
    time_split: pd.DataFrame
    markdown: str
    files: list[Path]
    notes: list[str]
    warning: str | None
    defect: str | None = None  # set when a greedy run differs from AR by more than a near-tie


def load_root(root: Path) -> RunsRoot:
    root = Path(root)
    folders = find_runs(root)
    if not folders:
        raise HarnessError(f"no runs found under {root}")
    frame = load_questions_frame(folders, read=read_run)
    if frame.empty:
        raise HarnessError(f"the runs under {root} hold no finished question yet")
    notes = [note for folder in folders if (note := _incomplete(folder, frame)) is not None]
    return RunsRoot(root, folders, frame, summarize(frame), machines.read_environments(folders), notes)


def _incomplete(folder: Path, frame: pd.DataFrame) -> str | None:
    """A note for an unsharded run that has not answered its whole profile (yet)."""
    count, _ = shard_files(folder)
    expected = profile_question_ids(folder) if count is None else None
    if not expected:
        return None
    done = set(frame.question_id[frame.folder == str(folder)])
    missing = [q for q in expected if q not in done]
    if not missing:
        return None
    return f"{folder}: {len(expected) - len(missing)} of {len(expected)} questions so far (still running?)"


def markdown(runs: RunsRoot, split: pd.DataFrame, shares: pd.DataFrame) -> str:
    parts = [sections.header_markdown(runs.summary, runs.machines, runs.corpora)]
    if runs.warning:
        parts.append(f"> **{runs.warning}**\n")
    if defect := sections.defect_line(runs.summary):
        parts.append(f"> **{defect}**\n")
    parts.append(tables.paper_markdown(runs.summary))
    if fixes := tables.hd_fixes_markdown(runs.summary):
        parts.append(fixes)
    if checks := sections.greedy_checks_markdown(runs.summary):
        parts.append(checks)
    parts.append(sections.time_split_markdown(split))
    if not shares.empty:
        parts.append(sections.source_shares_markdown(shares))
    parts.append(sections.environment_markdown(runs.machines, runs.warning))
    return "\n".join(parts)


def latex(runs: RunsRoot, split: pd.DataFrame) -> str:
    return tables.paper_latex(runs.summary) + "\n" + sections.time_split_latex(split)


def write_report(root: Path) -> Report:
    runs = load_root(root)
    folder = Path(root) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    split = sections.time_split(runs.frame)
    shares = sections.source_shares(runs.frame)
    text = markdown(runs, split, shares)
    files = [
        write_csv(runs.summary, folder / "summary.csv"),
        write_csv(split, folder / "time_split.csv"),
        write_text_atomic(folder / "tables.md", text),
        write_text_atomic(folder / "tables.tex", latex(runs, split)),
    ]
    if not shares.empty:
        files.append(write_csv(shares, folder / "source_shares.csv"))
    built, figure_notes = figures.build_figures(runs.summary, shares)
    files += figures.save_figures(built, folder)
    notes = runs.notes + figure_notes
    return Report(
        folder, runs.summary, split, text, files, notes, runs.warning, sections.defect_line(runs.summary)
    )


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    with replaced_atomically(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    return path

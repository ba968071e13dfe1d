"""make wandb-report: every run of a root compared side by side.

    python -m spec_bench.report.wandb_compare runs/quick/smollm2_135m [--mode online]

With W&B online and ``wandb-workspaces`` installed, this saves a W&B Report in the runs'
project (the report's tables, then bar charts of each category's speedup and MAT per
method, a panel grid per model and temperature). Otherwise it writes
``<root>/report/comparison.html``: one self-contained file (tables and the figures as
embedded PNGs) to open or mail anywhere.
"""

from __future__ import annotations

import argparse
import base64
import html
import importlib.util
import re
import sys
from pathlib import Path

import matplotlib

from spec_bench.errors import HarnessError
from spec_bench.files import write_text_atomic
from spec_bench.metrics import find_runs
from spec_bench.report import Report, write_report
from spec_bench.report.labels import category_label, ordered_categories, temperature_text
from spec_bench.tracking import MODES, runs_settings

matplotlib.use("Agg")

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #ccc; text-align: right; }
th:first-child, td:first-child { text-align: left; }
blockquote { background: #fff3cd; border-left: 4px solid #d39e00; margin: 1rem 0; padding: 0.5rem 1rem; }
figure { margin: 1.5rem 0; } img { max-width: 100%; }
"""


def workspaces_available() -> bool:
    return importlib.util.find_spec("wandb_workspaces") is not None


def markdown_to_html(text: str) -> str:
    """The subset of Markdown the report writes: headings, pipe tables, quotes, **bold**."""
    out, table = [], []

    def flush_table() -> None:
        if not table:
            return
        header, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
        rows = [row for row in rows if not all(set(cell) <= set("-:") for cell in row)]
        out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr></thead>")
        body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows)
        out.append(f"<tbody>{body}</tbody></table>")
        table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level = len(heading[1])
            out.append(f"<h{level}>{_inline(heading[2])}</h{level}>")
        elif line.startswith("> "):
            out.append(f"<blockquote>{_inline(line[2:])}</blockquote>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush_table()
    return "\n".join(out)


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def write_html(report: Report) -> Path:
    figures = []
    for path in report.files:
        if path.suffix == ".png":
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            figures.append(
                f'<figure><img alt="{path.stem}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(path.stem)}</figcaption></figure>"
            )
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in report.notes)
    title = f"hd-spec-bench: {report.folder.parent}"
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
            f"<style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            markdown_to_html(report.markdown),
            "<h2>Figures</h2>",
            *figures,
            f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "",
            "</body></html>",
        ]
    )
    return write_text_atomic(report.folder / "comparison.html", page)


def build_wandb_report(report: Report, settings: dict) -> str:
    """Save a W&B Report over the runs this root's runs logged online; returns its URL."""
    import wandb
    import wandb_workspaces.reports.v2 as wr

    entity = settings.get("entity") or wandb.Api().default_entity
    project = settings["project"]
    summary = report.summary
    blocks = [wr.H1(f"hd-spec-bench: {report.folder.parent.name}")]
    if report.warning:
        blocks.append(wr.P(report.warning))
    blocks.append(wr.MarkdownBlock(text=report.markdown))
    for (model, temperature), part in summary.groupby(["model", "temperature"]):
        runset = wr.Runset(
            entity=entity,
            project=project,
            name=f"{model} {temperature_text(temperature)}",
            filters=f"Config('model.name') == '{model}' and Config('temperature') == {temperature:g}",
            groupby=["config.run_name", "config.engine.budget"],
        )
        panels = [
            wr.BarPlot(
                title=f"{category_label(category)}: {metric}",
                metrics=[f"{category}/{metric}"],
                orientation="v",
                groupby="config.run_name",  # one bar per method; the runset splits budgets
            )
            for metric in ("speedup", "mat")
            for category in ordered_categories(part.category)
        ]
        blocks += [
            wr.H2(f"{model}, {temperature_text(temperature)}"),
            wr.PanelGrid(runsets=[runset], panels=panels),
        ]
    saved = wr.Report(
        entity=entity,
        project=project,
        title=f"Speculative decoding on Spec-Bench: {report.folder.parent.name}",
        description="Speedup over AR and mean accepted tokens per category, from hd-spec-bench runs.",
        blocks=blocks,
    ).save()
    return saved.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spec_bench.report.wandb_compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", type=Path, help="runs root, e.g. runs/quick/smollm2_135m")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="default: the runs' wandb.mode",
    )
    args = parser.parse_args(argv)
    try:
        report = write_report(args.root)
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    settings = runs_settings(find_runs(args.root), args.mode)
    if settings["mode"] == "online" and workspaces_available():
        print(f"W&B report: {build_wandb_report(report, settings)}")
        return 0
    mode = settings["mode"]
    reason = "wandb-workspaces is not installed" if mode == "online" else f"wandb.mode is {mode}"
    path = write_html(report)
    print(f"note: {reason}, so no W&B Report; wrote the local comparison {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

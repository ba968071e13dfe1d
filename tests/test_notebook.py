"""notebooks/analysis: the .py is the source, the .ipynb its pair; it runs on real runs."""

from __future__ import annotations

import shutil

import jupytext
import nbformat
from nbclient import NotebookClient

from .conftest import REPO

NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
SOURCE = REPO / "notebooks" / "analysis.py"


def test_paired_notebook_matches_its_source():
    source, paired = jupytext.read(SOURCE), jupytext.read(NOTEBOOK)
    assert [(c.cell_type, c.source) for c in source.cells] == [(c.cell_type, c.source) for c in paired.cells]
    assert paired.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert all(not c.get("outputs") for c in paired.cells), "commit the notebook without outputs"


def test_notebook_runs_on_smoke_output(smoke_runs, tmp_path, monkeypatch):
    out, _ = smoke_runs
    # A copy: the notebook must not need write access, and the shared runs stay untouched.
    root = shutil.copytree(
        out / "smoke" / "smollm2_135m", tmp_path / "smollm2_135m", ignore=shutil.ignore_patterns("report")
    )
    monkeypatch.setenv("HD_RUNS_ROOT", str(root))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "2 runs, 12 answered questions" in text
    markdown = "".join(output.get("data", {}).get("text/markdown", "") for output in outputs)
    assert "### smollm2_135m, T=0" in markdown and "| PLD |" in markdown
    images = sum("image/png" in output.get("data", {}) for output in outputs)
    # speedup_by_category, mat_by_drafter, speedup_vs_mat, per-question, accepted lengths
    assert images == 5
    assert "note: source_shares: skipped" in text and "note: speedup_t0_vs_t1: skipped" in text
    assert not (root / "report").exists()

"""make reproduce: the grid it launches (AR once, every drafter at each budget mode, the
ablations at the paper budget), the report after it, and the input it refuses."""

from __future__ import annotations

import sys

import pytest

from spec_bench import reproduce


def launched(monkeypatch, status: int = 0) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(reproduce.subprocess, "call", lambda command, cwd: calls.append(command) or status)
    return calls


def test_ar_once_then_each_drafter_at_both_budget_modes_then_the_report(monkeypatch):
    calls = launched(monkeypatch)
    argv = ["--bench", "smoke", "--drafters", "ar,pld,hd", "--out", "somewhere", "--launcher", "local"]
    assert reproduce.main(argv) == 0
    ar, grid, report = calls
    assert "drafter=ar" in ar and not any(arg.startswith("engine.budget") for arg in ar)
    assert "drafter=pld,hd" in grid and "engine.budget=paper,auto" in grid
    assert all("hydra/launcher=local" in c and "bench=smoke" in c for c in (ar, grid))
    assert report == [sys.executable, "-m", "spec_bench.report", "somewhere/smoke/smollm2_135m"]


def test_no_report_when_a_sweep_fails(monkeypatch):
    calls = launched(monkeypatch, status=1)
    assert reproduce.main(["--drafters", "pld"]) == 1
    assert len(calls) == 1


def test_ablations_are_config_files_run_at_the_paper_budget(monkeypatch):
    calls = launched(monkeypatch)
    assert (
        reproduce.main(["--drafters", "hd_fixed", "--ablations", "hd-WS,hd+dedup", "--temperatures", "0"])
        == 0
    )
    _ar, _grid, ablations, _report = calls
    assert "drafter=hd" in ablations and "ablation=hd-WS,hd+dedup" in ablations
    assert "engine.budget=paper" in ablations and "temperature=0" in ablations


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ablations", "hd-WX"], "unknown ablation(s) hd-WX"),
        (["--drafters", "pld,nope"], "unknown drafter(s) nope"),
        (["--budgets", "paper,-3"], "--budgets takes paper, auto or integers"),
    ],
)
def test_bad_choices_are_refused_before_anything_runs(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(reproduce.subprocess, "call", lambda command, cwd: pytest.fail("ran"))
    with pytest.raises(SystemExit):
        reproduce.main(argv)
    assert message in capsys.readouterr().err

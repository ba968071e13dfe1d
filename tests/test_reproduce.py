"""make reproduce: the grid it launches, the report after it, and the skipped drafters."""

from __future__ import annotations

import sys

import pytest

from spec_bench import reproduce


def test_grid_then_full_report_with_skipped_drafters_noted(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(reproduce, "is_implemented", lambda name: name != "hd")
    monkeypatch.setattr(reproduce.subprocess, "call", lambda command, cwd: calls.append(command) or 0)

    status = reproduce.main(
        ["--bench", "smoke", "--drafters", "pld,hd", "--out", "somewhere", "--launcher", "local"]
    )

    assert status == 0
    grid, report = calls
    assert "drafter=ar,pld" in grid and "hydra/launcher=local" in grid and "bench=smoke" in grid
    assert report == [sys.executable, "-m", "spec_bench.report", "somewhere/smoke/smollm2_135m"]
    err = capsys.readouterr().err
    # Once before the grid and once after the report's tables.
    assert err.count("note: drafter 'hd' is not implemented yet; skipped") == 2


def test_no_report_when_the_grid_fails(monkeypatch):
    calls = []
    monkeypatch.setattr(reproduce.subprocess, "call", lambda command, cwd: calls.append(command) or 1)
    assert reproduce.main(["--drafters", "pld"]) == 1
    assert len(calls) == 1


def test_ablations_run_hd_once_per_database_order(monkeypatch):
    calls = []
    monkeypatch.setattr(reproduce.subprocess, "call", lambda command, cwd: calls.append(command) or 0)
    assert reproduce.main(["--drafters", "hd", "--ablations", "w,S,WS", "--temperatures", "0"]) == 0
    grid, *ablations, _report = calls
    assert "drafter=ar,hd" in grid
    expected = [("[W]", "hd-W"), ("[S]", "hd-S"), ("[W,S]", "hd-WS")]
    for command, (order, name) in zip(ablations, expected, strict=True):
        assert f"drafter.order={order}" in command and f"run_name={name}" in command
    assert all("drafter=hd" in c and "temperature=0" in c for c in ablations)


def test_an_ablation_that_is_not_an_order_of_w_s_l_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(reproduce.subprocess, "call", lambda command, cwd: pytest.fail("ran"))
    for bad in ("WX", "WW"):
        with pytest.raises(SystemExit):
            reproduce.main(["--ablations", bad])
        assert f"'{bad}' is not an order of the databases" in capsys.readouterr().err

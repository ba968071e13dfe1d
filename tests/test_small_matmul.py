"""The CPU verification kernel: same linear map, one row untouched, subclasses left alone."""

from __future__ import annotations

import json

import torch

from spec_bench.models import small_matmul


class Scaled(torch.nn.Linear):
    pass


def test_patched_linears_compute_the_same_map():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Linear(32, 8, bias=False), Scaled(8, 8))
    inputs = {rows: torch.randn(1, rows, 16) for rows in (1, 3, 64, 65)}
    expected = {rows: model(x) for rows, x in inputs.items()}
    assert small_matmul.use_small_rows_matmul(model) == 2  # the subclass keeps its forward
    assert "forward" not in vars(model[2])
    for rows, x in inputs.items():
        got = model(x)
        assert got.shape == expected[rows].shape
        if rows in (1, 65):  # outside 2..MAX_ROWS: F.linear itself, bit for bit
            assert torch.equal(got, expected[rows])
        else:
            torch.testing.assert_close(got, expected[rows], rtol=1e-5, atol=1e-6)


def test_auto_measures_both_kernels_on_the_models_own_layers():
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Linear(256, 64))
    default, transposed = small_matmul.time_kernels(model)
    assert default > 0 and transposed > 0
    assert isinstance(small_matmul.wanted("auto", model), bool)  # a measured choice, either way
    assert small_matmul.wanted(True, model) and not small_matmul.wanted(False, model)


def test_auto_measures_once_per_cache_so_every_run_of_a_grid_gets_the_same_kernels(tmp_path, monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Linear(256, 64))
    cache = tmp_path / "kernels" / "m.json"
    first = small_matmul.wanted("auto", model, cache)
    assert json.loads(cache.read_text())["small_rows_matmul"] == first

    def must_not_time(_model):
        raise AssertionError("measured again although the choice is cached")

    monkeypatch.setattr(small_matmul, "time_kernels", must_not_time)
    assert small_matmul.wanted("auto", model, cache) == first
    cache.write_text(json.dumps({"small_rows_matmul": not first}))
    assert small_matmul.wanted("auto", model, cache) == (not first)  # the cached choice rules

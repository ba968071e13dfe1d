"""Shared fixtures: the embedded model is loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = os.environ.get("HD_SPEC_BENCH_CACHE", str(Path.home() / ".cache" / "hd-spec-bench"))


def shared_data_dir() -> Path:
    """Where the Spec-Bench questions and offline corpora are: the project's data/ after
    `make setup`, else the local mirror."""
    for candidate in (
        REPO / "data",
        Path(os.environ.get("SPEC_BENCH_MIRROR", REPO.parent / "shared" / "data")),
    ):
        if (candidate / "spec_bench" / "question.jsonl").is_file():
            return candidate
    pytest.skip("Spec-Bench questions not found; run `make setup`")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def target():
    from spec_bench.models import load_target

    # fp32: greedy outputs must equal AR's bit for bit here (bf16 is checked apart, where a
    # batched verification may flip a near-tie).
    model_cfg = OmegaConf.load(REPO / "conf" / "model" / "smollm2_135m.yaml")
    model_cfg.dtype = "float32"
    return load_target(model_cfg, CACHE_DIR)


@pytest.fixture(scope="session")
def bf16_target():
    """The embedded model in bf16, on the kernels measured fastest here for it."""
    from spec_bench.models import load_target

    model_cfg = OmegaConf.load(REPO / "conf" / "model" / "smollm2_135m.yaml")
    model_cfg.dtype = "bfloat16"
    return load_target(model_cfg, CACHE_DIR)


def compose_config(*overrides: str):
    """The run config exactly as `python run.py <overrides>` composes it."""
    from spec_bench.commands import compose_config as compose

    return compose(list(overrides))


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """Compose a run config writing under tmp_path and reading the shared questions."""

    def make(*overrides: str):
        return compose_config(
            f"out_dir={tmp_path / 'runs'}", f"data_dir={data_dir}", f"cache_dir={CACHE_DIR}", *overrides
        )

    return make


# The end-to-end smoke setting shared by every test that needs real runs.
SMOKE = ("bench=smoke", "bench.max_new_tokens=32", "engine.warmup_tokens=4")


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory, target, data_dir):
    """ar and pld over one question per category, greedy, decoded once per session.
    Tests that write into the root (a report, a resume) must leave the answers as they
    found them; others copy the root first."""
    from spec_bench.runner import Runner

    out = tmp_path_factory.mktemp("runs")
    folders = {}
    for drafter in ("ar", "pld"):
        cfg = compose_config(
            f"drafter={drafter}", f"out_dir={out}", f"data_dir={data_dir}", f"cache_dir={CACHE_DIR}", *SMOKE
        )
        folders[drafter] = Runner(cfg, target=target).run().folder
    return out, folders


def drafter_from_config(name: str, *overrides: str):
    """A drafter built from ``conf/drafter/<name>.yaml`` as runs build it, without a run's
    resources: sources that need a model or datastore get theirs by hand in the test."""
    from spec_bench.drafters import instantiate_drafter

    return instantiate_drafter(compose_config(f"drafter={name}", *overrides).drafter)

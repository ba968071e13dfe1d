"""Every drafter, greedy, on one question of every Spec-Bench category: its tokens must be
the AR tokens. A fixed budget large enough for real trees (drafts and Jacobi window) keeps
the check meaningful: the automatic budget may verify few drafts on a busy machine."""

from __future__ import annotations

import pytest

from spec_bench.data import CATEGORIES
from spec_bench.drafters import is_implemented
from spec_bench.records import read_records
from spec_bench.runner import Runner

from .conftest import CACHE_DIR, compose_config

SETTINGS = ("bench=smoke", "bench.max_new_tokens=32", "engine.warmup_tokens=4", "engine.budget=32")
# A small model database: what is checked here is losslessness, not its coverage.
EXTRA = {"hd": ("drafter.model_db.limit=16", "drafter.model_db.max_new_tokens=32")}


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, target, data_dir):
    root = tmp_path_factory.mktemp("lossless")

    def run(drafter: str, *overrides: str):
        paths = (f"out_dir={root}", f"data_dir={data_dir}", f"cache_dir={CACHE_DIR}")
        cfg = compose_config(f"drafter={drafter}", *paths, *SETTINGS, *EXTRA.get(drafter, ()), *overrides)
        return read_records(Runner(cfg, target=target).run().answers)

    run.ar = {r["question_id"]: r for r in run("ar")}
    return run


# The PyPI draftretriever package's index in place of REST's suffix array: alone in HD (L)
# so that its drafts are the ones verified.
PACKAGE = ("drafter.datastore.backend=draftretriever",)
VARIANTS = {
    "rest": ("rest", ()),
    "lookahead": ("lookahead", ()),
    "hd": ("hd", ()),
    "rest-draftretriever": ("rest", (*PACKAGE, "run_name=rest-draftretriever")),
    "hd-L-draftretriever": ("hd", (*PACKAGE, "drafter.order=[L]", "run_name=hd-L-draftretriever")),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_greedy_drafter_equals_ar_on_every_category(runs_root, variant):
    drafter, overrides = VARIANTS[variant]
    if not is_implemented(drafter):
        pytest.skip(f"{drafter} is not implemented yet")
    records = {r["question_id"]: r for r in runs_root(drafter, *overrides)}
    assert sorted({r["category"] for r in records.values()}) == sorted(CATEGORIES)
    assert records.keys() == runs_root.ar.keys()
    for question_id, record in records.items():
        assert record["ar_match"] is True
        expected = [t["token_ids"] for t in runs_root.ar[question_id]["turns"]]
        assert [t["token_ids"] for t in record["turns"]] == expected
    # The drafter did draft: some step accepted more than the bonus token.
    assert max(n for r in records.values() for n in r["accept_lengths"]) > 1

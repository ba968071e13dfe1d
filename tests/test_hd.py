"""Hierarchy Drafting: each database on hand-worked tokens, then the hierarchy over them."""

from __future__ import annotations

import json

import pytest

from hd.context_db import ContextDB
from hd.drafter import HierarchyDrafter
from hd.model_db import ModelDB, ModelDBSettings, generate_answers, open_model_db, rank_ngrams
from hd.statistics_db import StatisticsDB
from spec_bench.data.templates import build_prompt
from spec_bench.datastore import SuffixIndex, write_index
from spec_bench.engine.decode import Engine
from spec_bench.engine.proposal import ROOT, NoDrafter, Proposal, StepResult
from spec_bench.errors import HarnessError

from .distribution import assert_lossless

# --- W: context-dependent -------------------------------------------------------------


def test_context_db_keeps_most_recent_first_and_evicts_the_oldest():
    db = ContextDB(level=3, capacity=2)
    db.add([1, 2, 3])
    db.add([1, 4, 5])
    assert db.lookup(1, 5) == [[4, 5], [2, 3]]
    db.add([1, 2, 3])  # used again: most recent
    assert db.lookup(1, 5) == [[2, 3], [4, 5]]
    db.add([1, 6, 7])  # full: [4, 5], the least recently used, goes
    assert db.lookup(1, 5) == [[6, 7], [2, 3]]
    db.add([1, 2])  # not an n-gram of LEVEL tokens: ignored
    assert len(db) == 2


def test_context_db_takes_every_new_ngram_including_the_newest():
    db = ContextDB(level=3, capacity=7)
    db.add_sequence([1, 2, 3, 4])  # the prompt: [1,2,3], [2,3,4]
    assert db.lookup(1, 7) == [[2, 3]] and db.lookup(2, 7) == [[3, 4]]
    # Two tokens accepted: the n-grams ending in them are [3,4,5] and [4,5,6]; the
    # official update slice dropped the newest one.
    db.add_sequence([1, 2, 3, 4, 5, 6], new=2)
    assert db.lookup(3, 7) == [[4, 5]]
    assert db.lookup(4, 7) == [[5, 6]]
    assert len(db) == 4


# --- S: model-dependent ---------------------------------------------------------------


def test_model_db_ranks_by_document_frequency_and_keeps_top_per_key():
    documents = [
        [1, 2, 3, 1, 2, 3, 1, 2, 3],  # [1,2,3] thrice in one document counts once
        [1, 2, 4, 5, 6],
        [1, 2, 4, 9, 9],
        [7, 1, 2, 4],
    ]
    db = rank_ngrams(documents, level=3, top_total=100, per_key=2)
    # [1,2,4] is in three documents, [1,2,3] in one: frequency beats repetition.
    assert db.lookup(1, 5) == [[2, 4], [2, 3]]
    assert db.lookup(1, 1) == [[2, 4]]
    assert db.lookup(2, 5) == [[3, 1], [4, 5]]  # ties (one document each): smaller ids first, 2 kept
    top = rank_ngrams(documents, level=3, top_total=1, per_key=7)
    assert len(top) == 1 and top.lookup(1, 5) == [[2, 4]]
    assert db.lookup(42, 5) == [] and db.lookup(1, 0) == []


def test_model_db_file_errors_are_one_line(tmp_path):
    bad = tmp_path / "db.json"
    bad.write_text('{"format": 0, "entries": {}}')
    with pytest.raises(HarnessError, match="cannot read the model database"):
        ModelDB.load(bad)
    with pytest.raises(HarnessError, match="unknown drafter.model_db settings: typo"):
        ModelDBSettings.from_config({"typo": 1})


def test_model_db_is_built_from_the_models_answers_and_cached(target, data_dir, tmp_path):
    corpus = tmp_path / "prompts.jsonl"
    rows = [["Count from one to ten.", ""], ["List the days of the week.", ""], ["Benchmark question?", ""]]
    corpus.write_text("".join(json.dumps({"data": row}) + "\n" for row in rows))
    settings = ModelDBSettings(corpus=str(corpus), limit=None, max_new_tokens=24, batch_size=2)
    db = open_model_db(settings, target, 5, tmp_path / "cache", data_dir, excluded=["benchmark question?"])
    [path] = (tmp_path / "cache" / "model_db").glob("*.json")
    meta = json.loads(path.read_text())
    assert meta["prompts"] == 2  # the excluded question was not answered
    assert 0 < len(db) and meta["answer_tokens"] <= 2 * 24
    # The stored n-grams are the model's own: an answer decoded from them reads as text.
    answer_ngram = [first, *db.entries[first][0]] if (first := next(iter(db.entries))) else []
    assert target.decode(answer_ngram).strip()
    built = path.stat().st_mtime_ns
    open_model_db(settings, target, 5, tmp_path / "cache", data_dir, excluded=["benchmark question?"])
    assert path.stat().st_mtime_ns == built  # reused, not rebuilt
    with pytest.raises(HarnessError, match="python -m hd.build_model_db"):
        missing = ModelDBSettings(corpus=str(corpus), limit=1, build_if_missing=False)
        open_model_db(missing, target, 5, tmp_path / "c2", data_dir)


def test_batched_answers_equal_the_engines_ar_answers(target):
    """S is built with a batched, left-padded loop; padding and length-sorting must not
    change a token or the order of the answers."""
    prompts = ["Write a short poem about the sea and the wind at night.", "Name three colours."]
    settings = ModelDBSettings(max_new_tokens=12, batch_size=2)
    batched = generate_answers(target, prompts, settings)
    engine = Engine(target, 0.0)
    for prompt, answer in zip(prompts, batched):
        ids = target.encode(build_prompt(target.template, [prompt], []))
        alone = engine.generate(ids, NoDrafter(), 12).tokens
        eos = next((i for i, token in enumerate(alone) if token in target.eos_token_ids), len(alone))
        assert answer == alone[:eos]


# --- L: statistics-dependent ----------------------------------------------------------


def index_of(tmp_path, entries) -> SuffixIndex:
    write_index(entries, tmp_path / "index.bin", vocab_size=100)
    return SuffixIndex(tmp_path / "index.bin")


def test_statistics_db_truncates_deduplicates_and_ranks(tmp_path):
    index = index_of(tmp_path, [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 7], [8, 2, 3, 9], [5, 2, 3]])
    db = StatisticsDB(index, previous_tokens=2, draft_length=2)
    # [2, 3] occurs 4 times: continuations [4,5], [4,7] -> cut to 2 tokens: [4,5], [4,7],
    # [9,5] and, at the very end of the text, nothing (dropped, never padded).
    assert db.lookup([0, 2, 3], limit=10) == [[4, 5], [4, 7], [9, 5]]
    db = StatisticsDB(index, previous_tokens=2, draft_length=1)
    assert db.lookup([0, 2, 3], limit=10) == [[4], [9]]  # [4] twice, merged, ranked first
    assert db.lookup([0, 2, 3], limit=1) == [[4]]


def test_statistics_db_falls_back_to_the_last_token(tmp_path):
    index = index_of(tmp_path, [[1, 2, 3, 4], [5, 3, 6]])
    db = StatisticsDB(index, previous_tokens=2, draft_length=2)
    assert db.lookup([9, 2, 3], limit=5) == [[4, 5]]  # [2, 3] occurs: 2 tokens used
    assert db.lookup([9, 9, 3], limit=5) == [[4, 5], [6]]  # [9, 3] does not: [3] alone
    assert db.lookup([9, 9, 42], limit=5) == []


# --- the hierarchy --------------------------------------------------------------------


def drafts_by_source(proposal: Proposal) -> list[tuple[str, list[int]]]:
    """Root-to-leaf drafts in insertion order, labelled with their leaf's source."""
    leaves = [node for node in range(proposal.n_drafts) if node not in proposal.parents]
    result = []
    for leaf in leaves:
        path, node = [], leaf
        while node != ROOT:
            path.append(proposal.tokens[node])
            node = proposal.parents[node]
        result.append((proposal.sources[leaf], path[::-1]))
    return result


@pytest.fixture
def hierarchy(tmp_path):
    model_db = ModelDB({5: [[6, 7, 8, 9], [1, 1, 1, 1]]})
    statistics_db = StatisticsDB(index_of(tmp_path, [[4, 5, 2, 2, 2, 2], [3, 5, 6, 7, 8, 9]]), draft_length=4)

    def make(order=("W", "S", "L"), guess=7):
        drafter = HierarchyDrafter(model_db, statistics_db, order=order, level=5, window=2, guess=guess)
        drafter.reset([5, 6, 7, 8, 9, 0, 5])  # W gets [5 -> 6 7 8 9], [5 -> ...] from the prompt
        return drafter

    return make


def test_hierarchy_queries_in_order_and_deduplicates(hierarchy):
    proposal = hierarchy().propose([5, 6, 7, 8, 9, 0, 5], budget=64)
    drafts = drafts_by_source(proposal)
    # W: the prompt's n-gram [5 6 7 8 9]; S: [6 7 8 9] again (skipped) and [1 1 1 1];
    # L (suffix [0 5] absent, then [5]): [2 2 2 2] and [6 7 8 9] (skipped again).
    assert drafts == [("W", [6, 7, 8, 9]), ("S", [1, 1, 1, 1]), ("L", [2, 2, 2, 2])]
    assert proposal.branch_tokens  # the Jacobi window rides along


def test_hierarchy_respects_guess_and_budget_and_order(hierarchy):
    assert drafts_by_source(hierarchy(guess=2).propose([0, 5], budget=64)) == [
        ("W", [6, 7, 8, 9]),
        ("S", [1, 1, 1, 1]),
    ]
    only_l = drafts_by_source(hierarchy(order=("L",)).propose([0, 5], budget=64))
    assert only_l == [("L", [2, 2, 2, 2]), ("L", [6, 7, 8, 9])]
    for budget in (0, 1, 3, 8, 20):
        proposal = hierarchy().propose([0, 5], budget=budget)
        assert len(proposal) <= budget
    with pytest.raises(HarnessError, match="drafter.order"):
        HierarchyDrafter(order=("W", "X"))


def test_accepted_tokens_reach_w(hierarchy):
    drafter = hierarchy(order=("W",))
    context = [5, 6, 7, 8, 9, 0, 5]
    proposal = drafter.propose(context, budget=64)
    predictions = [3] * len(proposal.branch_tokens)
    step = StepResult([1, 2, 3], ["W", "W", "bonus"], proposal, branch_predictions=predictions)
    drafter.observe(step)
    # Newest accepted n-gram [0 5 1 2 3], keyed by 0, is drafted right away.
    assert drafts_by_source(drafter.propose([*context, 1, 2, 3, 9, 0], budget=64))[0] == ("W", [5, 1, 2, 3])


def test_hd_proposals_keep_the_sampling_distribution(tmp_path):
    model_db = ModelDB({5: [[1, 2, 3, 4], [2, 2, 0, 1]]})
    drafter = HierarchyDrafter(model_db, None, order=("W", "S"), level=5, window=2, guess=4)
    drafter.reset([5, 1, 2, 0, 4, 5, 3, 0, 1, 2])
    proposal = drafter.propose([5, 1, 2, 0, 4, 5], budget=32)
    assert_lossless(proposal, vocab=6)

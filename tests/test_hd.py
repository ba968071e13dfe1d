"""Hierarchy Drafting: each database on hand-worked tokens, then the hierarchy over them.
The expected drafts of ``hd`` follow the official code (``zomss/Hierarchy_Drafting``,
``model/hierachy/decoding.py``), read line by line: W's prompt and update slices and its
oldest-first lists, S's least-frequent-first lists, L's pooled queries and random padding,
7 drafts over the three databases with no de-duplication. ``hd_fixed`` and each
``ablation=hd+<fix>`` change one of these at a time."""

from __future__ import annotations

import json

import pytest

from hd.model_db import ModelDB, ModelDBSettings, ModelDBSource, generate_answers, open_model_db, rank_ngrams
from hd.statistics_db import StatisticsSource
from spec_bench.data.templates import build_prompt
from spec_bench.drafting import PoolSource
from spec_bench.engine.decode import Engine
from spec_bench.engine.proposal import ROOT, NoDrafter, Proposal, StepResult
from spec_bench.errors import HarnessError

from .conftest import drafter_from_config
from .distribution import assert_lossless

# --- W: context-dependent -------------------------------------------------------------


def official_w(capacity: int = 7) -> PoolSource:
    return PoolSource(
        level=5, capacity=capacity, from_prompt=True, accepted_ngrams="official", newest_first=False
    )


def step(tokens: list[int]) -> StepResult:
    """A step that accepted all but the last of ``tokens`` as drafts; the last is the bonus."""
    return StepResult(tokens, ["W"] * (len(tokens) - 1) + ["bonus"], Proposal())


def test_official_w_takes_every_prompt_ngram_and_drafts_the_oldest_first():
    w = official_w()
    w.reset([10, 11, 12, 13, 14, 10, 11, 12, 15, 10, 11])
    assert w.lookup([10], 7) == [[11, 12, 13, 14], [11, 12, 15, 10]]
    assert w.lookup([11], 7) == [[12, 13, 14, 10], [12, 15, 10, 11]]
    assert w.lookup([14], 7) == [[10, 11, 12, 15]] and w.lookup([15], 7) == []
    fixed = PoolSource(level=5, capacity=7, from_prompt=True, accepted_ngrams="all", newest_first=True)
    fixed.reset([10, 11, 12, 13, 14, 10, 11, 12, 15, 10, 11])
    assert fixed.lookup([10], 7) == [[11, 12, 15, 10], [11, 12, 13, 14]]


def test_official_w_update_loses_the_ngrams_ending_at_the_first_draft_and_the_bonus():
    prompt = [1, 2, 3, 4, 5, 6, 2, 3, 7, 8]
    w = official_w()
    w.reset(prompt)
    before = {key: list(value) for key, value in w.pool.entries.items()}
    # Drafts 9, 10, 11 accepted, bonus 12: the slices [-5-h:-h] for h = 1, 2 add the
    # n-grams ending at 11 and at 10 (h = 0 is empty); those ending at 9 and 12 are lost.
    w.observe(step([9, 10, 11, 12]), harvested=[])
    assert w.pool.entries[7] == [(8, 9, 10, 11)]
    assert w.pool.entries[3] == [(4, 5, 6, 2), (7, 8, 9, 10)]
    assert 2 not in w.pool.entries or w.pool.entries[2] == before[2]
    assert 8 not in w.pool.entries
    # One accepted draft or none: nothing reaches W.
    for tokens in ([9, 10], [9]):
        w.reset(prompt)
        w.observe(step(tokens), harvested=[])
        assert w.pool.entries == before
    # The fix: every n-gram ending in the step's tokens, oldest first.
    fixed = PoolSource(level=5, capacity=7, from_prompt=True, accepted_ngrams="all", newest_first=True)
    fixed.reset(prompt)
    fixed.observe(step([9, 10, 11, 12]), harvested=[])
    assert fixed.lookup([8], 7) == [[9, 10, 11, 12]] and fixed.lookup([2], 7)[0] == [3, 7, 8, 9]


def test_w_takes_the_windows_ngrams_and_evicts_the_least_recent():
    w = official_w(capacity=2)
    w.reset([0])
    w.observe(step([1]), harvested=[[5, 1, 1, 1, 1], [5, 2, 2, 2, 2], [5, 1, 1, 1, 1], [7, 1]])
    assert w.lookup([5], 7) == [[2, 2, 2, 2], [1, 1, 1, 1]]  # re-added: most recent
    w.observe(step([1]), harvested=[[5, 3, 3, 3, 3]])
    assert w.lookup([5], 7) == [[1, 1, 1, 1], [3, 3, 3, 3]]  # [2, 2, 2, 2] evicted
    assert w.lookup([7], 7) == []  # not a LEVEL-gram: ignored


# --- S: model-dependent ---------------------------------------------------------------


def model_db_settings(**overrides) -> ModelDBSettings:
    """The CPU profiles' settings (conf/model_db/lima.yaml) with ``overrides``."""
    from omegaconf import OmegaConf

    from .conftest import REPO

    values = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model_db" / "lima.yaml"))
    return ModelDBSettings.from_config({**values, **overrides})


def test_official_s_drafts_its_top_entries_least_frequent_first():
    # Ten continuations of 5 with counts 10..1: the top 7 (per_key) are kept, most frequent
    # first as stored; the official lists are ascending, so drafting starts at count 4.
    documents = [[5, 100 + i, 0, 0, 0] for i in range(10) for _ in range(10 - i)]
    db = rank_ngrams(documents, level=5, top_total=100_000, per_key=7)
    assert db.entries[5] == [[100 + i, 0, 0, 0] for i in range(7)]
    official = ModelDBSource(level=5, frequent_first=False, db=db)
    assert official.lookup([9, 5], 64) == [[106 - i, 0, 0, 0] for i in range(7)]
    assert ModelDBSource(level=5, frequent_first=True, db=db).lookup([5], 64)[0] == [100, 0, 0, 0]
    assert official.lookup([6], 64) == []


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
    with pytest.raises(HarnessError, match="unknown model_db settings: typo"):
        ModelDBSettings.from_config({"typo": 1})
    with pytest.raises(HarnessError, match="missing model_db settings: corpus"):
        ModelDBSettings.from_config({})


def test_model_db_is_built_from_the_models_answers_and_cached(target, data_dir, tmp_path):
    corpus = tmp_path / "prompts.jsonl"
    rows = [["Count from one to ten.", ""], ["List the days of the week.", ""], ["Benchmark question?", ""]]
    corpus.write_text("".join(json.dumps({"data": row}) + "\n" for row in rows))
    settings = model_db_settings(corpus=str(corpus), limit=None, max_new_tokens=24, batch_size=2)
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
        missing = model_db_settings(corpus=str(corpus), limit=1, build_if_missing=False)
        open_model_db(missing, target, 5, tmp_path / "c2", data_dir)


def test_batched_answers_equal_the_engines_ar_answers(target):
    """S is built with a batched, left-padded loop; padding and length-sorting must not
    change a token or the order of the answers."""
    prompts = ["Write a short poem about the sea and the wind at night.", "Name three colours."]
    settings = model_db_settings(max_new_tokens=12, batch_size=2)
    batched = generate_answers(target, prompts, settings)
    engine = Engine(target, 0.0)
    for prompt, answer in zip(prompts, batched):
        ids = target.encode(build_prompt(target.template, [prompt], []))
        alone = engine.generate(ids, NoDrafter(), 12).tokens
        eos = next((i for i, token in enumerate(alone) if token in target.eos_token_ids), len(alone))
        assert answer == alone[:eos]


# --- L: statistics-dependent ----------------------------------------------------------


class StubIndex:
    """Answers each query with fixed draft-tree node paths, in a fixed order."""

    def __init__(self, answers: dict[tuple[int, ...], list[list[int]]]) -> None:
        self.answers = answers
        self.queries: list[list[int]] = []

    def start_request(self) -> None:
        pass

    def search(self, query, choices, length, max_matches, spread=False, cut=True):
        self.queries.append(list(query))
        return [(path, 1) for path in self.answers.get(tuple(query), [])]


def statistics(index, union_queries=True, pad=True) -> StatisticsSource:
    source = StatisticsSource(
        previous_tokens=2,
        draft_length=4,
        guess=7,
        choices=64,
        retrieve_length=10,
        max_retrieved=5000,
        union_queries=union_queries,
        pad=pad,
        index=index,
        vocab_size=32000,
    )
    source.reset([0])
    return source


L_ANSWERS = {
    (4, 5): [[7, 8, 9, 10, 11], [7, 8, 9, 10], [7, 8, 9], [7, 8], [7], [7, 20], [30]],
    (5,): [[7, 8, 9, 10, 12], [30, 31, 32], [40, 41]],
}


def test_official_l_pools_both_queries_drops_prefix_matches_and_pads_randomly():
    index = StubIndex(L_ANSWERS)
    drafts = statistics(index).lookup([3, 4, 5], room=64)
    assert index.queries == [[4, 5], [5]]
    # Longest first, cut to 4; duplicates and prefix-matches of a kept draft skipped; one
    # random id per draft (the full one draws too) fills it: Python's random, seeded with 0.
    assert drafts == [[7, 8, 9, 10], [7, 20, 12623, 12623], [30, 24836, 24836, 24836], [40, 41, 29171, 29171]]
    assert statistics(index).lookup([3, 4, 5], room=64) == drafts  # seeded per request


def test_l_fixes_ask_the_longest_query_only_and_keep_short_drafts():
    index = StubIndex(L_ANSWERS)
    assert statistics(index, union_queries=False, pad=False).lookup([3, 4, 5], 64) == [
        [7, 8, 9, 10],
        [7, 20],
        [30],
    ]
    assert statistics(index, union_queries=True, pad=False).lookup([3, 4, 5], 64)[-1] == [40, 41]
    assert statistics(index, union_queries=False).lookup([9, 5], 64)[0][:2] == [7, 8]  # [9, 5]: no answer
    assert statistics(index).lookup([9, 9], 64) == []


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


S_ENTRIES = {5: [[100 + i, 0, 0, 0] for i in range(7)]}  # most frequent first, as stored
PROMPT = [5, 6, 7, 8, 9, 0, 5, 1, 1, 1, 1]  # W: 5 -> [6 7 8 9], [1 1 1 1]


def hierarchy(name: str = "hd", *overrides: str, l_answers=None):
    drafter = drafter_from_config(name, "drafter.window.window=2", *overrides)
    if "S" in drafter.sources:
        drafter.sources["S"].db = ModelDB(S_ENTRIES)
    if "L" in drafter.sources:
        drafter.sources["L"].index = StubIndex(l_answers or {})
        drafter.sources["L"].vocab_size = 32000
    drafter.reset(PROMPT)
    return drafter


def test_official_hierarchy_fills_seven_drafts_least_frequent_s_first():
    drafter = hierarchy()
    assert drafter.paper_budget == 55 and drafter.order == ["W", "S", "L"]
    drafts = drafts_by_source(drafter.propose([*PROMPT, 5], budget=64))
    # W's two, oldest first; then S's top 7 least frequent first, cut at 7 drafts in all:
    # S's two most frequent (100, 101) are the ones left out; L is never asked.
    assert drafts == [("W", [6, 7, 8, 9]), ("W", [1, 1, 1, 1])] + [
        ("S", [106 - i, 0, 0, 0]) for i in range(5)
    ]
    assert drafter.sources["L"].index.queries == []
    fixed = drafts_by_source(hierarchy("hd_fixed").propose([*PROMPT, 5], budget=64))
    assert fixed[:3] == [("W", [1, 1, 1, 1]), ("W", [6, 7, 8, 9]), ("S", [100, 0, 0, 0])]


def test_official_hierarchy_spends_a_slot_on_a_repeated_draft():
    s_repeats_w = {5: [[6, 7, 8, 9]]}
    drafter = hierarchy(l_answers={(0, 5): [[6, 7, 8, 9]], (5,): [[2, 2]]})
    drafter.sources["S"].db = ModelDB(s_repeats_w)
    proposal = drafter.propose([5, 6, 7, 8, 9, 0, 5], budget=64)
    # W 2 drafts, S repeats one, L repeats it too, then [2 2 r r]: 5 drafts counted, 3 distinct.
    assert [d for _, d in drafts_by_source(proposal)][:2] == [[6, 7, 8, 9], [1, 1, 1, 1]]
    assert len(drafts_by_source(proposal)) == 3
    capped = hierarchy("hd", "drafter.max_drafts=4", l_answers={(5,): [[2, 2], [3, 3]]})
    capped.sources["S"].db = ModelDB(s_repeats_w)
    # Official: W 2 + S's repeat (a slot, no node) + L's first = 4 drafts; [3 3 ..] is cut.
    leaves = [d[:2] for _, d in drafts_by_source(capped.propose([7, 5], budget=64))]
    assert leaves == [[6, 7], [1, 1], [2, 2]]
    deduped = hierarchy(
        "hd", "drafter.max_drafts=4", "drafter.dedup=true", l_answers={(5,): [[2, 2], [3, 3]]}
    )
    deduped.sources["S"].db = ModelDB(s_repeats_w)
    leaves = [d[:2] for _, d in drafts_by_source(deduped.propose([7, 5], budget=64))]
    assert leaves == [[6, 7], [1, 1], [2, 2], [3, 3]]


def test_hierarchy_respects_budget_and_order():
    for budget in (0, 1, 3, 8, 20, 55):
        assert len(hierarchy().propose([*PROMPT, 5], budget=budget)) <= budget
    only_s = drafts_by_source(hierarchy("hd", "drafter.order=[S]").propose([0, 5], budget=64))
    assert [source for source, _ in only_s] == ["S"] * 7
    with pytest.raises(HarnessError, match="drafter.order"):
        hierarchy("hd", "drafter.order=[W,X]")


def test_ablation_configs_change_one_thing():
    from .conftest import compose_config

    official = compose_config("drafter=hd").drafter
    for fix in ("newest_ngrams", "recent_first", "frequent_first", "longest_query", "no_padding", "dedup"):
        cfg = compose_config("drafter=hd", f"ablation=hd+{fix}")
        assert cfg.run_name == f"hd+{fix}" and cfg.drafter != official
    assert list(compose_config("drafter=hd", "ablation=hd-WS").drafter.order) == ["W", "S"]


def test_hd_proposals_keep_the_sampling_distribution():
    drafter = hierarchy("hd", "drafter.order=[W,S]", "drafter.max_drafts=4")
    drafter.sources["S"].db = ModelDB({5: [[1, 2, 3, 4], [2, 2, 0, 1]]})
    drafter.reset([5, 1, 2, 0, 4, 5, 3, 0, 1, 2])
    proposal = drafter.propose([5, 1, 2, 0, 4, 5], budget=32)
    assert_lossless(proposal, vocab=6)

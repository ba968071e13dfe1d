"""Suffix-tree drafting on hand-made token lists (no model). The expected drafts follow
SuffixDecoding (ArcticInference ``csrc/suffix_decoding/suffix_tree.cc``, ``cache.py``), worked
out by hand and checked against its compiled code: counts are occurrences (the trailing one
included), a child's probability is its count over its parent's along the path, every match
length is tried and the best summed probability wins."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.suffix import SuffixSource, SuffixTrie
from spec_bench.engine.proposal import Proposal, StepResult

from .conftest import drafter_from_config
from .distribution import assert_lossless

S = [1, 2, 3, 1, 2, 4, 1, 2, 3, 5, 1, 2]


def source(factor: float = 1.0, min_prob: float = 0.1, tree: bool = True, min_match: int = 1) -> SuffixSource:
    return SuffixSource(
        max_depth=64,
        max_spec_factor=factor,
        max_spec_offset=0.0,
        min_token_prob=min_prob,
        tree=tree,
        max_cached_responses=10,
        min_match=min_match,
    )


def test_counts_are_occurrences_the_trailing_one_included():
    trie = SuffixTrie(64)
    trie.append(0, S)
    counts = {q: trie.find(list(q)).count for q in [(2,), (2, 3), (2, 4), (1, 2), (1, 2, 3), (5, 1, 2)]}
    assert counts == {(2,): 4, (2, 3): 2, (2, 4): 1, (1, 2): 4, (1, 2, 3): 2, (5, 1, 2): 1}
    trie.remove(S)
    assert trie.root.count == 0 and not trie.root.children


def test_the_request_tree_drafts_by_probability_within_the_match_lengths_cap():
    # "1 2" (match 2) continues 3 (2 of 4) or 4 (1 of 4); after "1 2 3", 1 and 5 (1 of 2 each).
    chain = source(tree=False)
    chain.reset(S)
    assert chain.lookup(S, room=64) == [[3], [3, 1]]  # 0.5 + 0.25, capped at 2 tokens
    tree = source()
    tree.reset(S)
    assert tree.lookup(S, room=64) == [[3], [4]]
    wider = source(factor=2.0)
    wider.reset(S)
    assert wider.lookup(S, room=64) == [[3], [4], [3, 1], [3, 5]]  # score 1.25
    assert wider.lookup(S, room=2) == [[3], [4]]  # the room the step leaves
    pruned = source(factor=4.0, min_prob=0.3)
    pruned.reset(S)
    assert pruned.lookup(S, room=64) == [[3]]  # 0.25 < 0.3: pruned


def test_the_global_tree_of_earlier_answers_wins_on_a_better_score():
    drafter = source()
    for answer in ([7, 1, 2, 3, 9], [8, 1, 2, 3, 9, 9]):
        drafter.reset([0])
        drafter.observe(StepResult(answer, ["bonus"] * len(answer), Proposal()), harvested=[])
    drafter.reset(S)
    # Globally "1 2" always continued with 3 9: score 2.0 beats the request's 0.75.
    assert drafter.lookup(S, room=64) == [[3], [3, 9]]
    drafter.max_cached_responses = 1
    drafter.reset(S)  # the oldest answers are evicted
    assert drafter.global_tree.root.count == 0


def test_min_match_leaves_short_matches_to_the_next_source():
    drafter = source(min_match=3)
    drafter.reset(S)
    assert drafter.lookup(S, room=64) == []  # "5 1 2" occurs only at the end: nothing follows
    assert drafter.lookup([*S, 3, 1, 2], room=64) != []


def test_composed_hierarchies_label_every_source():
    drafter = drafter_from_config("suffix_tr")
    assert drafter.order == ["suffix", "TR"] and drafter.sources["suffix"].min_match == 5
    for name, order in (("hd_tr", ["W", "S", "L", "TR"]), ("hd_suffix", ["W", "suffix", "S", "L"])):
        composed = drafter_from_config(name)
        assert composed.order == order and composed.capped == {"W", "S", "L"}


def test_suffix_proposals_keep_the_sampling_distribution():
    drafter = source(factor=2.0)
    tokens = [5, 1, 2, 0, 5, 1, 3, 4, 5, 2, 2, 5, 1, 2, 5]
    drafter.reset(tokens)
    proposal = Proposal()
    for path in drafter.lookup(tokens, room=16):
        proposal.add_path(path, "suffix", 64)
    assert_lossless(proposal, vocab=6)


# "5 1 2 0 4" repeats, so a suffix match of 5 tokens (suffix_tr's threshold) continues it.
REPEATING = [5, 1, 2, 0, 4, 5, 1, 2, 0, 4, 3, 5, 1, 2, 0, 4]


@pytest.mark.parametrize(
    ("name", "overrides"), [("suffix_tr", ()), ("hd_suffix_tr", ("drafter.order=[W,suffix,TR]",))]
)
def test_composed_hierarchy_proposals_keep_the_sampling_distribution(name, overrides):
    drafter = drafter_from_config(name, *overrides)
    recycling = drafter.sources["TR"]
    recycling.matrix = np.array(
        [[(token + rank) % 6 for rank in range(recycling.topk)] for token in range(6)]
    )
    drafter.reset(REPEATING)
    proposal = drafter.propose(REPEATING, budget=24)
    assert len(set(proposal.sources)) >= 2, proposal.sources  # the tree mixes sources
    assert_lossless(proposal, vocab=6)

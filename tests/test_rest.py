"""REST's retrieval and draft tree on hand-made datastores (no model). The expected trees of
``rest`` follow Spec-Bench's DraftRetriever (``model/rest/DraftRetriever/src/lib.rs``,
``search``) and ``generate_candidates_and_draft_buffer`` (``model/rest/rest/model/utils.py``),
read line by line and checked on its wheel: the first span of 16 down to 2 tokens with a
match, the first 5,000 occurrences, prefix counts, the top 64, ``cut_to_choices``, prefix
closure; no match verifies the token 100."""

from __future__ import annotations

import numpy as np
import pytest

from spec_bench.datastore import SuffixIndex, write_index
from spec_bench.datastore.search import draftretriever_search, most_frequent_nodes
from spec_bench.engine.proposal import ROOT

from .conftest import drafter_from_config
from .distribution import assert_lossless


def index_of(tmp_path, entries) -> SuffixIndex:
    write_index(entries, tmp_path / "index.bin", vocab_size=100)
    return SuffixIndex(tmp_path / "index.bin")


def rest_on(index, name: str = "rest", *overrides: str):
    drafter = drafter_from_config(name, *overrides)
    drafter.sources["rest"].index = index
    return drafter


def tree_of(drafter, context: list[int], budget: int) -> set[tuple[int, ...]]:
    """The proposal as the set of its root-to-node paths (REST's node order is random)."""
    drafter.reset(context)
    proposal = drafter.propose(context, budget)
    paths = set()
    for node in range(proposal.n_drafts):
        path, current = [], node
        while current != ROOT:
            path.append(proposal.tokens[current])
            current = proposal.parents[current]
        paths.add(tuple(path[::-1]))
    return paths


def prefixes(*paths: tuple[int, ...]) -> set[tuple[int, ...]]:
    return {path[:depth] for path in paths for depth in range(1, len(path) + 1)}


def test_rest_tree_is_the_cut_prefix_closure_of_the_most_frequent_nodes(tmp_path):
    # Entries as REST's builder writes them (BOS 1 first); the root 12 ends the context.
    entries = [[1, 10, 11, 12, 13, 14, 15], [1, 10, 11, 12, 13, 16], [1, 20, 11, 12, 17]]
    rest = rest_on(index_of(tmp_path, entries))
    assert rest.paper_budget == 64
    # Spans 5..4 never occur; [10, 11, 12] does, twice: continuations
    # [13,14,15,1,10,11,12,13,16,1] and [13,16,1,20,11,12,17]. 16 nodes, distinct tokens
    # summing to 78 > 64: the two nodes with 8 distinct tokens go, leaving 14.
    expected = prefixes((13, 14, 15, 1, 10, 11, 12, 13), (13, 16, 1, 20, 11, 12, 17))
    assert len(expected) == 14
    assert tree_of(rest, [1, 30, 10, 11, 12], 64) == expected


def test_cut_to_choices_drops_deep_nodes_whatever_their_count():
    # Continuations of [5, 6]: [7,8] x3, [9,40], [9,41], [7,11]; counts [7]=4, [7,8]=3, [9]=2.
    rows = np.array([[7, 8], [7, 8], [7, 8], [9, 40], [9, 41], [7, 11]])
    # choices=3: the top 3 are [7], [7,8], [9]; their distinct tokens sum to 4 > 3, so [7,8]
    # (count 3) goes while [9] (count 2) stays.
    assert {tuple(p) for p, _ in draftretriever_search(rows, 3)} == {(7,), (9,)}
    assert {tuple(p) for p, _ in draftretriever_search(rows, 64)} == prefixes(
        (7, 8), (7, 11), (9, 40), (9, 41)
    )
    # Most frequent first, parents before children; the variant without the cut keeps [7,8].
    assert draftretriever_search(rows, 64)[:3] == [([7], 4), ([7, 8], 3), ([9], 2)]
    assert most_frequent_nodes(rows, 3) == [([7], 4), ([7, 8], 3), ([9], 2)]


def test_no_match_verifies_the_dummy_token_and_the_longest_span_wins(tmp_path):
    index = index_of(tmp_path, [[5, 6, 7, 8, 9], [1, 6, 7, 3]])
    rest = rest_on(index)
    assert tree_of(rest, [50, 51], 64) == {(100,)}
    assert tree_of(rest, [50, 51], 0) == set()
    assert tree_of(rest_on(index, "rest_spread"), [50, 51], 64) == {(100,)}  # REST's fallback too
    # The longest span with a match decides: [5, 6, 7] (then 8 9 1 6 7 3), not [6, 7].
    assert tree_of(rest, [0, 5, 6, 7], 64) == prefixes((8, 9, 1, 6, 7, 3))
    source = rest.sources["rest"]
    assert index.longest_suffix([0, 5, 6, 7], 16, 2) == 3
    assert index.longest_suffix([0, 2, 6, 7], 16, 2) == 2
    assert index.longest_suffix([0, 5, 6, 7], 2, 2) == 2
    assert index.longest_suffix([7], 16, 2) == 0  # too short for a 2-token query
    assert source.retrieve([0, 0, 7]) == []


def test_rest_reads_the_first_occurrences_and_the_variant_spreads_them(tmp_path):
    # 100 occurrences of 1, followed by 2 (x10), 3 (x10), ... in suffix-array order.
    index = index_of(tmp_path, [[1, 2 + i // 10] for i in range(100)])
    first = index.continuations([1], length=1, max_matches=10).ravel().tolist()
    assert first == [2] * 10  # REST: the continuations that sort first
    spread = index.continuations([1], length=1, max_matches=10, spread=True).ravel().tolist()
    assert len(spread) == 10 and len(set(spread)) >= 8


def test_a_smaller_budget_keeps_the_most_frequent_nodes(tmp_path):
    index = index_of(tmp_path, [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 5], [9, 2, 6]])
    rest = rest_on(index, "rest", "drafter.sources.rest.draft_length=3")
    # Span [1, 2] (3 matches) wins over [2] (4): 3 -> {4 (x2), 5}, each then running on.
    full = tree_of(rest, [8, 1, 2], 64)
    assert (3,) in full and (3, 4) in full and (3, 5) in full
    assert tree_of(rest, [8, 1, 2], 2) == {(3,), (3, 4)}
    assert all(label == "rest" for label in rest.propose([8, 1, 2], 64).sources)


@pytest.mark.parametrize("seed", range(10))
def test_most_frequent_nodes_form_a_trie_within_the_limit(seed):
    rng = np.random.default_rng(seed)
    continuations = rng.integers(0, 4, size=(60, 5))
    continuations[rng.random((60, 5)) < 0.1] = -1
    for row in continuations:  # -1 pads only at the end of a row
        pad = np.flatnonzero(row < 0)
        if len(pad):
            row[pad[0] :] = -1
    for limit in (1, 7, 64):
        nodes = [path for path, _ in most_frequent_nodes(continuations, limit)]
        assert len(nodes) <= limit
        seen = set()
        for prefix in nodes:  # every prefix's parent came earlier: a trie
            assert len(prefix) == 1 or tuple(prefix[:-1]) in seen
            seen.add(tuple(prefix))
        counts = {p: 0 for p in seen}
        for row in continuations.tolist():
            for depth in range(1, len(row) + 1):
                if row[depth - 1] < 0:
                    break
                if tuple(row[:depth]) in counts:
                    counts[tuple(row[:depth])] += 1
        # Nothing left out is more frequent than the least frequent kept prefix.
        all_counts: dict[tuple, int] = {}
        for row in continuations.tolist():
            for depth in range(1, len(row) + 1):
                if row[depth - 1] < 0:
                    break
                all_counts[tuple(row[:depth])] = all_counts.get(tuple(row[:depth]), 0) + 1
        left_out = [c for p, c in all_counts.items() if p not in seen]
        if left_out:
            assert max(left_out) <= min(counts.values())


def paths_of(proposal) -> list[list[int]]:
    leaves = set(range(proposal.n_drafts)) - set(proposal.parents)
    paths = []
    for leaf in sorted(leaves):
        path, node = [], leaf
        while node != ROOT:
            path.append(proposal.tokens[node])
            node = proposal.parents[node]
        paths.append(path[::-1])
    return paths


def test_rest_proposals_keep_the_sampling_distribution(tmp_path):
    # Tokens 0..5 so the synthetic target distribution covers every drafted token.
    index = index_of(tmp_path, [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 0, 1], [1, 2, 4], [3, 1, 2, 3, 3]])
    proposal = rest_on(index, "rest", "drafter.sources.rest.draft_length=3").propose([0, 1, 2], budget=16)
    assert_lossless(proposal, vocab=6)

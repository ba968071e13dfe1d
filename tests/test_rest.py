"""REST's retrieval and draft trie on hand-made datastores (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.rest import RestDrafter, longest_matching_suffix, most_frequent_prefixes
from spec_bench.datastore import SuffixIndex, write_index
from spec_bench.engine.proposal import ROOT

from .distribution import assert_lossless


def index_of(tmp_path, entries) -> SuffixIndex:
    write_index(entries, tmp_path / "index.bin", vocab_size=100)
    return SuffixIndex(tmp_path / "index.bin")


def test_most_frequent_prefixes_rank_by_count_then_shorter():
    continuations = np.array(
        [
            [1, 2, 3],
            [1, 2, 3],
            [1, 2, 4],
            [1, 5, -1],
            [6, 7, 8],
        ]
    )
    # Counts: [1]=4, [1,2]=3, [1,2,3]=2, then five prefixes of count 1.
    assert most_frequent_prefixes(continuations, 3) == [[1], [1, 2], [1, 2, 3]]
    # Ties at count 1: shorter first ([6], then [1, 5] before [6, 7] by token id);
    # returned shallowest first so parents precede children.
    assert most_frequent_prefixes(continuations, 5) == [[1], [6], [1, 2], [1, 5], [1, 2, 3]]
    assert most_frequent_prefixes(continuations, 0) == []
    assert most_frequent_prefixes(np.empty((0, 3), dtype=np.int64), 5) == []


@pytest.mark.parametrize("seed", range(10))
def test_most_frequent_prefixes_form_a_trie_within_the_limit(seed):
    rng = np.random.default_rng(seed)
    continuations = rng.integers(0, 4, size=(60, 5))
    continuations[rng.random((60, 5)) < 0.1] = -1
    for row in continuations:  # -1 pads only at the end of a row
        pad = np.flatnonzero(row < 0)
        if len(pad):
            row[pad[0] :] = -1
    for limit in (1, 7, 64):
        prefixes = most_frequent_prefixes(continuations, limit)
        assert len(prefixes) <= limit
        seen = set()
        for prefix in prefixes:  # every prefix's parent came earlier: a trie
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


def test_longest_matching_suffix_prefers_long_matches(tmp_path):
    index = index_of(tmp_path, [[5, 6, 7, 8, 9], [1, 6, 7, 3]])
    assert longest_matching_suffix(index, [0, 5, 6, 7], longest=16, shortest=2) == 3
    assert longest_matching_suffix(index, [0, 1, 6, 7], longest=16, shortest=2) == 3
    assert longest_matching_suffix(index, [0, 2, 6, 7], longest=16, shortest=2) == 2
    assert longest_matching_suffix(index, [0, 5, 6, 7], longest=2, shortest=2) == 2
    assert longest_matching_suffix(index, [0, 0, 7], longest=16, shortest=2) == 0
    assert longest_matching_suffix(index, [7], longest=16, shortest=2) == 0  # context too short


def test_drafter_drafts_the_frequent_continuations_within_budget(tmp_path):
    index = index_of(tmp_path, [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 5], [9, 2, 6]])
    drafter = RestDrafter(index, draft_length=3)
    drafter.reset([1])
    proposal = drafter.propose([8, 1, 2], budget=16)
    paths = {tuple(path) for path in paths_of(proposal)}
    # Suffix [1, 2] (3 matches) wins over [2] (4 matches): 3 -> {4: 2, 5: 1}
    assert (3, 4, 1) in paths and (3, 5, 9) in paths
    assert set(proposal.sources) == {"rest"}
    assert len(drafter.propose([8, 1, 2], budget=2)) == 2
    assert len(drafter.propose([8, 1, 2], budget=0)) == 0
    assert len(drafter.propose([7, 7, 7], budget=16)) == 0


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
    proposal = RestDrafter(index, draft_length=3).propose([0, 1, 2], budget=16)
    assert_lossless(proposal, vocab=6)

"""Token Recycling on hand-made matrices (no model). The expected drafts follow Spec-Bench's
``model/recycling`` (``prepare_data_input_ids``, and the update in
``inference_recycling.py``), read line by line: a node's token is the matrix row of its
parent's token at the node's rank, filled breadth-first; each verified node's token gets the
target's top-k there as its new row."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.token_recycling import TokenRecycling
from spec_bench.engine.auto_budget import drafter_candidates, learning_floor
from spec_bench.engine.proposal import ROOT, Proposal, StepResult

from .conftest import drafter_from_config
from .distribution import assert_lossless

# k = 2, nodes (parent, rank): 1 (root, 0), 2 (root, 1), 3 (1, 0), 4 (1, 1), 5 (2, 0), 6 (3, 0).
TEMPLATE = [[0], [1], [0, 0], [0, 1], [1, 0], [0, 0, 0]]


def tr_with(rows: dict[int, list[int]], vocab: int = 6) -> TokenRecycling:
    source = TokenRecycling(topk=2, template=TEMPLATE, vocab_size=vocab)
    for token, row in rows.items():
        source.matrix[token] = row
    return source


def test_the_template_is_filled_breadth_first_from_the_matrix():
    source = tr_with({1: [2, 3], 2: [4, 5], 3: [2, 1], 4: [5, 2], 5: [1, 0]})
    # Root 1: 1 -> 2, 3; 2 -> 4, 5; 3 -> 2; 4 -> 5.
    assert source.lookup([9, 1], room=64) == [[2], [3], [2, 4], [2, 5], [3, 2], [2, 4, 5]]
    assert source.lookup([9, 1], room=3) == [[2], [3], [2, 4]]  # the budget keeps the first nodes
    # A token never verified has a zero row: its children are token 0, merged by the trie.
    assert source.lookup([0], room=64)[:2] == [[0], [0]]


def test_every_verified_node_rewrites_its_tokens_row_with_the_targets_top_k():
    source = tr_with({})
    proposal = Proposal()
    proposal.add_path([2, 4], "TR", 64)
    proposal.add_path([3], "TR", 64)
    step = StepResult(
        [2, 4, 5], ["TR", "TR", "bonus"], proposal, topk=[[2, 3], [4, 0], [5, 1], [1, 4]], root=1
    )
    source.observe(step, harvested=[])
    # Root 1, then nodes 2, 4, 3 in proposal order, accepted or not.
    assert source.matrix[1].tolist() == [2, 3] and source.matrix[2].tolist() == [4, 0]
    assert source.matrix[4].tolist() == [5, 1] and source.matrix[3].tolist() == [1, 4]
    source.observe(StepResult([7], ["bonus"], Proposal()), harvested=[])  # the prefill: no top-k
    assert source.matrix[5].tolist() == [0, 0]


def test_published_tr_is_80_nodes_of_8_children_kept_across_requests():
    drafter = drafter_from_config("token_recycling")
    source = drafter.sources["TR"]
    assert drafter.paper_budget == 80 and drafter.topk == 8 and len(source.template) == 80
    depths = np.bincount([len(path) for path in source.template])[1:].tolist()
    assert depths == [8, 21, 25, 15, 8, 3]
    source.matrix = np.zeros((10, 8), dtype=np.int64)
    source.matrix[3] = np.arange(8)
    drafter.reset([1, 2, 3])
    drafter.reset([4, 5, 3])  # a new request keeps the matrix, as TR does
    proposal = drafter.propose([4, 5, 3], budget=80)
    assert [t for t, parent in zip(proposal.tokens, proposal.parents) if parent == ROOT] == list(range(8))


def test_neither_ar_steps_nor_budgets_training_fewer_rows_than_trs_first_level_are_candidates():
    # TR learns the rows of the tokens it verifies, the root's included: a budget below k - 1
    # nodes (k = 8 children of the root) trains fewer than k rows, a cost the automatic
    # budget cannot see in the step that pays it, so without a window (whose smaller budgets
    # are measured inside the larger tree's steps) such budgets are not offered.
    assert TokenRecycling(topk=2, template=TEMPLATE).min_room == 1
    sizes = [1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129]
    for name in ("token_recycling", "suffix_tr", "hd_tr"):
        drafter = drafter_from_config(name)
        assert drafter.min_budget == drafter.learning_budget == 7, name
    for name in ("token_recycling", "suffix_tr"):
        drafter = drafter_from_config(name)
        assert learning_floor(drafter) == 0, name
        # No AR steps either: an AR step trains one row.
        assert drafter_candidates(drafter, 64)[:2] == [8, 16]
        assert drafter_candidates(drafter, 64, sizes)[:3] == [7, 8, 15]
    # HD+TR verifies each budget in its own steps (its window makes it so), which show what
    # learning less costs: its budgets below 7 are offered, behind a soft floor at 7.
    hd_tr = drafter_from_config("hd_tr")
    assert hd_tr.window_budget == 1 and learning_floor(hd_tr) == 7
    assert drafter_candidates(hd_tr, 64)[:5] == [1, 2, 4, 8, 16]
    assert drafter_candidates(hd_tr, 64, sizes)[:7] == [1, 2, 3, 4, 7, 8, 15]
    assert drafter_candidates(hd_tr, 4, sizes) == [1, 2, 3, 4]
    assert drafter_from_config("suffix").min_budget == 1
    assert drafter_candidates(drafter_from_config("suffix"), 64)[:3] == [0, 1, 2]
    suffix = drafter_candidates(drafter_from_config("suffix"), 32, sizes)
    assert suffix == [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32]
    for name in ("hd", "lookahead", "suffix", "hd_suffix"):
        assert learning_floor(drafter_from_config(name)) == 0, name
    assert drafter_from_config("hd").min_budget == 1


def test_bad_templates_are_refused():
    with pytest.raises(ValueError, match="parent before it"):
        TokenRecycling(topk=2, template=[[0, 0], [0]])
    with pytest.raises(ValueError, match="ranks below 2"):
        TokenRecycling(topk=2, template=[[2]])


def test_tr_proposals_keep_the_sampling_distribution():
    source = tr_with({5: [1, 2], 1: [3, 4], 2: [0, 1], 3: [4, 0]})
    proposal = Proposal()
    for path in source.lookup([5], room=6):
        proposal.add_path(path, "TR", 64)
    assert_lossless(proposal, vocab=6)

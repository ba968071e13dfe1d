"""Prompt lookup on hand-made token lists (no model). The expected drafts of ``pld`` follow
Spec-Bench's ``find_candidate_pred_tokens`` (model/pld/pld.py), read line by line: n-gram
sizes 3, 2, 1; for each, the match indices in increasing order, the first whose slice
``[idx + n, idx + n + 10)`` lies inside the context; no match -> the dummy draft [100]."""

from __future__ import annotations

from baselines.pld import NGramIndex
from spec_bench.engine.proposal import ROOT, Proposal, StepResult

from .conftest import drafter_from_config

TEN = list(range(10, 20))


def drafts_of(drafter, context: list[int], budget: int) -> list[list[int]]:
    """The proposal's root-to-leaf paths."""
    drafter.reset(context)
    proposal = drafter.propose(context, budget)
    children = {parent for parent in proposal.parents}
    paths = []
    for node in range(len(proposal.tokens)):
        if node in children:
            continue
        path, current = [], node
        while current != ROOT:
            path.append(proposal.tokens[current])
            current = proposal.parents[current]
        paths.append(path[::-1])
    return paths


def test_spec_bench_pld_takes_the_earliest_match_with_a_full_continuation():
    pld = drafter_from_config("pld")
    assert pld.paper_budget == 10
    # (1, 2) occurs at index 3 and at index 15: Spec-Bench takes index 3, not the recent one.
    context = [7, 8, 9, 1, 2, *TEN, 1, 2, *range(30, 40), 40, 1, 2]
    assert drafts_of(pld, context, 10) == [TEN]
    # One chain, however large the budget.
    assert drafts_of(pld, context, 64) == [TEN]


def test_spec_bench_pld_falls_back_to_a_shorter_ngram_when_the_continuation_is_short():
    pld = drafter_from_config("pld")
    # (1, 2, 3) matched at index 12, but only 5 tokens follow it: not a candidate. The
    # 2-gram (2, 3) at index 0 has 10 tokens after it.
    context = [2, 3, *TEN, 1, 2, 3, 30, 31, 1, 2, 3]
    assert drafts_of(pld, context, 10) == [TEN]
    # The tree variant takes the longest n-gram's most recent match, short or not.
    tree = drafter_from_config("pld_tree")
    assert drafts_of(tree, context, 10) == [[30, 31, 1, 2, 3]]


def test_spec_bench_pld_verifies_the_dummy_token_when_nothing_matches():
    pld = drafter_from_config("pld")
    context = [1, 2, 3, 4, 5]  # 5 never occurred before
    assert drafts_of(pld, context, 10) == [[100]]
    assert drafts_of(pld, context, 0) == []
    assert drafts_of(drafter_from_config("pld_tree"), context, 10) == []


def test_budget_cuts_the_chain_and_steps_extend_the_index():
    pld = drafter_from_config("pld")
    prompt = list(range(20)) + [3, 4]
    pld.reset(prompt)
    proposal = pld.propose(prompt, budget=4)
    assert proposal.tokens == [5, 6, 7, 8] and proposal.parents == [ROOT, 0, 1, 2]
    assert set(proposal.sources) == {"pld"}
    pld.observe(StepResult(tokens=[5, 6], sources=["pld", "bonus"], proposal=Proposal()))
    # The context now ends ... 3 4 5 6; (4, 5, 6) matches the prompt -> 7 8 9 ...
    assert pld.propose(prompt + [5, 6], budget=3).tokens == [7, 8, 9]


def test_tree_variant_merges_recent_matches_when_the_budget_holds_them():
    index = NGramIndex(max_ngram=2)
    index.extend([5, 1, 2, 5, 3, 4, 5, 1, 2, 5, 7, 5])
    # (7, 5) unseen -> unigram (5,): followed by [7, 5], [1, 2] (twice, kept once), [3, 4]
    assert index.recent(2, max_matches=4) == [[7, 5], [1, 2], [3, 4]]
    tree = drafter_from_config("pld_tree", "drafter.sources.pld.num_pred_tokens=2")
    context = [5, 1, 2, 5, 3, 4, 5, 1, 2, 5, 7, 5]
    assert drafts_of(tree, context, 2) == [[7, 5]]  # room for one draft only
    assert drafts_of(tree, context, 8) == [[7, 5], [1, 2], [3, 4]]

"""Prompt lookup on hand-made token lists (no model)."""

from __future__ import annotations

from baselines.pld import NGramIndex, PromptLookupDrafter
from spec_bench.engine.proposal import ROOT, Proposal, StepResult


def test_longest_suffix_wins_and_most_recent_match_first():
    index = NGramIndex(max_ngram=3)
    index.extend([1, 2, 3, 4, 5, 9, 2, 3, 7, 8, 1, 2, 3])
    # suffix (1, 2, 3) occurred once, followed by 4 5 ...; the shorter (2, 3) also
    # matched later, but the longest suffix decides.
    assert index.continuations(3, max_matches=4) == [[4, 5, 9]]
    index.extend([6])
    # suffix (3, 6) / (2, 3, 6) never seen; (6,) neither -> nothing
    assert index.continuations(3, max_matches=4) == []


def test_several_matches_are_distinct_and_recent_first():
    index = NGramIndex(max_ngram=2)
    index.extend([5, 1, 2, 5, 3, 4, 5, 1, 2, 5])
    # (2, 5) occurred at positions 2-3 -> followed by [3, 4]; unigram fallback not used
    assert index.continuations(2, max_matches=4) == [[3, 4]]
    index.extend([7, 5])
    # (7, 5) unseen -> unigram (5,): followed by [7], [1, 2] (x2, deduplicated), [3, 4]
    assert index.continuations(2, max_matches=4) == [[7, 5], [1, 2], [3, 4]]


def test_drafter_respects_budget_and_learns_from_steps():
    drafter = PromptLookupDrafter(max_ngram=3, num_pred_tokens=10, max_matches=4)
    prompt = list(range(20)) + [3, 4]
    drafter.reset(prompt)
    proposal = drafter.propose(prompt, budget=4)
    assert proposal.tokens == [5, 6, 7, 8] and proposal.parents == [ROOT, 0, 1, 2]
    assert drafter.propose(prompt, budget=0).tokens == []
    full = drafter.propose(prompt, budget=64)
    assert full.tokens == list(range(5, 15)) and set(full.sources) == {"pld"}

    drafter.observe(StepResult(tokens=[5, 6], sources=["pld", "bonus"], proposal=Proposal()))
    # context now ends ... 3 4 5 6; (4, 5, 6) matches the prompt -> 7 8 ...
    assert drafter.propose(prompt + [5, 6], budget=3).tokens == [7, 8, 9]

"""Lookahead's Jacobi window, n-gram pool and drafter on hand-made tokens (no model). The
published form (``lookahead``) follows Spec-Bench's lade (``model/lade/decoding.py``,
``jacobi_greedy_search_multilevel``), read line by line: the pool starts empty and takes the
window's 7 n-grams a step; all of a key's n-grams are verified, oldest first; a guess's 4th
token never counts, so a step yields at most LEVEL-1 tokens."""

from __future__ import annotations

import random

import pytest

from spec_bench.drafting import JacobiWindow, NGramPool, PoolSource
from spec_bench.engine.proposal import ROOT, Proposal, StepResult

from .conftest import drafter_from_config
from .distribution import assert_lossless

PROMPT = [10, 11, 12, 13, 14, 15, 16, 17, 18, 9]


def depths(parents: list[int]) -> list[int]:
    result: list[int] = []
    for parent in parents:
        result.append(1 if parent == ROOT else result[parent] + 1)
    return result


def initial_guesses(seed: int, count: int) -> list[int]:
    mirror = random.Random(seed)
    return [mirror.choice(PROMPT) for _ in range(count)]


def step_of(proposal: Proposal, predictions: list[int], accepted: list[int]) -> StepResult:
    sources = ["draft"] * (len(accepted) - 1) + ["bonus"]
    return StepResult(tokens=accepted, sources=sources, proposal=proposal, branch_predictions=predictions)


def test_window_shape_and_one_warmup_then_steady_iteration():
    window = JacobiWindow(level=3, window=3)
    window.reset(PROMPT, seed=0)
    a, b, c = initial_guesses(0, 3)  # WINDOW + LEVEL - 3 tokens drawn from the prompt
    assert window.columns == [[9], [a], [b], [c]]  # the root tops column 0

    first = Proposal()
    assert window.add_to(first) == [0, 1, 2]
    assert first.branch_tokens == [a, b, c]
    assert first.branch_parents == [ROOT, 0, 1]
    assert depths(first.branch_parents) == [1, 2, 3]

    # Warm-up: every column grows by its guess, column 0 drops out, the root moves on.
    assert window.advance(step_of(first, [20, 21, 22], [30])) == []
    assert window.columns == [[30, 20], [b, 21], [c, 22]]
    assert not window.warming_up

    second = Proposal()
    assert window.add_to(second) == [0, 1, 2, 3, 4]
    assert second.branch_tokens == [20, b, 21, c, 22]
    # (1, c) hangs below (0, c); (0, c) below (0, c-1); the root is (0, 0).
    assert second.branch_parents == [ROOT, ROOT, 1, 1, 3]
    assert depths(second.branch_parents) == [1, 1, 2, 2, 3]
    assert window.size() == 5

    # Steady state: column + its guess is an n-gram; columns drop their top and take the
    # guess. Two accepted tokens still advance the window by one iteration.
    predictions = [40, -1, 41, -1, 42]  # only the bottom row's predictions are used
    ngrams = window.advance(step_of(second, predictions, [50, 51]))
    assert ngrams == [[30, 20, 40], [b, 21, 41], [c, 22, 42]]
    assert window.columns == [[51, 40], [21, 41], [22, 42]]


def test_warmup_grows_one_row_per_step_until_level_minus_one():
    window = JacobiWindow(level=5, window=2)
    window.reset(PROMPT, seed=1)
    shapes, harvested = [], []
    for step in range(5):
        proposal = Proposal()
        window.add_to(proposal)
        predictions = [100 + step] * len(proposal.branch_tokens)
        harvested.append(window.advance(step_of(proposal, predictions, [step])))
        shapes.append((len(window.columns), window.rows))
    # 5 columns of 1 at reset; LEVEL - 2 = 3 warm-up steps, then WINDOW x (LEVEL - 1).
    assert shapes == [(4, 2), (3, 3), (2, 4), (2, 4), (2, 4)]
    assert harvested[:3] == [[], [], []]
    assert [len(ngram) for ngram in harvested[3]] == [5, 5]
    assert harvested[3][0][0] == 2  # column 0's n-gram starts with that step's root
    assert harvested[3][1][-1] == 103


def test_partial_window_iterates_only_the_evaluated_columns():
    window = JacobiWindow(level=3, window=3)
    window.reset([7, 7, 7, 7])
    warm = Proposal()
    assert window.add_to(warm, columns=2) == [0]  # column 0 is the root alone
    window.advance(step_of(warm, [20], [30]))
    # Unevaluated columns still move and grow, by a prompt token.
    assert window.columns == [[30, 20], [7, 7], [7, 7]]

    steady = Proposal()
    assert window.columns_fitting(3) == 2 and window.size(2) == 3
    window.add_to(steady, columns=2)
    assert len(steady.branch_tokens) == 3
    ngrams = window.advance(step_of(steady, [40, 0, 41], [50]))
    assert ngrams == [[30, 20, 40], [7, 7, 41]]
    assert window.columns == [[50, 40], [7, 41], [7, 7]]  # column 2 unchanged

    # A step whose proposal did not carry the window advances nothing but the root.
    assert window.advance(step_of(Proposal(), [], [60])) == []
    assert window.columns == [[60, 40], [7, 41], [7, 7]]


def test_missing_predictions_are_an_error():
    window = JacobiWindow(level=3, window=2)
    window.reset(PROMPT)
    proposal = Proposal()
    window.add_to(proposal)
    with pytest.raises(ValueError, match="branch predictions"):
        window.advance(step_of(proposal, [], [1]))


def test_pool_deduplicates_evicts_the_oldest_and_serves_either_end_first():
    pool = NGramPool(capacity=2)
    pool.add([1, 2, 3])
    pool.add([1, 4, 5])
    pool.add([1, 2, 3])  # already there: becomes the most recent (lade: remove + append)
    assert pool.lookup(1, limit=5, newest_first=False) == [[4, 5], [2, 3]]  # lade's order
    assert pool.lookup(1, limit=5, newest_first=True) == [[2, 3], [4, 5]]
    pool.add([1, 6, 7])  # full: the least recently added ([4, 5]) goes
    assert pool.lookup(1, limit=5, newest_first=False) == [[2, 3], [6, 7]]
    assert pool.lookup(1, limit=1, newest_first=True) == [[6, 7]]
    assert pool.lookup(1, limit=1, newest_first=False) == [[2, 3]]
    assert pool.lookup(1, limit=0, newest_first=True) == [] and pool.lookup(2, 5, True) == []
    pool.add([2, 3, 4])
    assert len(pool) == 3


def next_token(token: int) -> int:
    """A toy deterministic 'model': a bigram cycle over 0..12."""
    return (token + 1) % 13


def toy_step(proposal: Proposal, root: int) -> StepResult:
    """Greedy verification under the toy model, as the engine would report it."""
    tokens, sources, node, current = [], [], ROOT, root
    cap = proposal.max_accepted if proposal.max_accepted is not None else len(proposal.tokens)
    while len(tokens) < cap and (child := proposal.child(node, next_token(current))) is not None:
        tokens.append(proposal.tokens[child])
        sources.append(proposal.sources[child])
        node, current = child, proposal.tokens[child]
    tokens.append(next_token(current))
    sources.append("bonus")
    predictions = [next_token(token) for token in proposal.branch_tokens]
    return StepResult(tokens=tokens, sources=sources, proposal=proposal, branch_predictions=predictions)


def lookahead(name: str = "lookahead", level: int = 5, window: int = 7, guess: int = 7, seed: int = 0):
    drafter = drafter_from_config(
        name,
        f"drafter.window.level={level}",
        f"drafter.window.window={window}",
        f"drafter.sources.lookahead.level={level}",
        f"drafter.sources.lookahead.capacity={guess}",
        f"drafter.max_drafts={guess}",
    )
    drafter.seed = seed
    return drafter


def run_toy(drafter, budget: int, steps: int) -> list[StepResult]:
    context = [3, 4, 5, 6, 0, 1, 2, 11, 12]
    drafter.reset(context)
    results = []
    for _ in range(steps):
        proposal = drafter.propose(context, budget)
        assert len(proposal) <= budget
        step = toy_step(proposal, context[-1])
        drafter.observe(step)
        context += step.tokens
        results.append(step)
    return results


@pytest.mark.parametrize("budget", [0, 1, 4, 16, 55, 64])
def test_proposals_respect_the_budget(budget):
    results = run_toy(lookahead(), budget, steps=30)
    nodes = [len(step.proposal) for step in results]
    assert max(nodes) <= budget
    if budget >= 16:
        # The window fills the pool and the pool's drafts get accepted. (Not at 4: one
        # column fits, column 0, whose n-grams start at the root; the toy bigram model
        # ignores the root, so they never match it.)
        assert any(step.proposal.n_drafts for step in results)
        assert sum(len(step.tokens) for step in results[-10:]) > 20
    if budget >= 55:
        # The whole step of the paper's settings fits: 27 window nodes plus the drafts, and
        # lade's loop yields LEVEL-1 tokens a step at most, even when all 4 guesses match.
        assert all(len(step.proposal.branch_tokens) == 27 for step in results[3:])
        assert sum(len(step.tokens) for step in results[-10:]) == 40


def test_published_lookahead_verifies_every_pooled_guess_oldest_first():
    drafter = lookahead()
    assert drafter.paper_budget == 55 and drafter.max_accepted == 3
    pool = drafter.sources["lookahead"]
    drafter.reset([1, 2, 3, 4, 5])
    assert len(pool) == 0  # empty at every request: lade never fills it from the prompt
    for guess in range(9):  # 9 n-grams for key 5: the 2 oldest are evicted
        pool.pool.add([5, guess, 0, 0, 0])
    proposal = drafter.propose([1, 2, 3, 4, 5], budget=55)
    firsts = [token for token, parent in zip(proposal.tokens, proposal.parents) if parent == ROOT]
    assert firsts == [2, 3, 4, 5, 6, 7, 8]  # all 7, oldest first
    assert proposal.n_drafts == 7 * 4 and len(proposal.branch_tokens) == 9  # window warming up
    fixed = lookahead("lookahead_fixed")
    fixed.reset([1, 2, 3, 4, 5])
    for guess in range(9):
        fixed.sources["lookahead"].pool.add([5, guess, 0, 0, 0])
    proposal = fixed.propose([1, 2, 3, 4, 5], budget=55)
    assert [t for t, parent in zip(proposal.tokens, proposal.parents) if parent == ROOT][0] == 8
    assert proposal.max_accepted is None
    results = run_toy(lookahead("lookahead_fixed"), 55, steps=30)
    assert sum(len(step.tokens) for step in results[-10:]) == 50  # the bonus kept: LEVEL a step


def test_tight_budget_is_split_between_window_and_drafts():
    results = run_toy(lookahead(), budget=16, steps=30)
    late = results[-1].proposal
    # 16 * 27/55 -> 7 nodes kept for the window (columns of 3 + 4), drafts take the rest.
    assert len(late.branch_tokens) >= 7 and late.n_drafts >= 4
    # With no n-gram to draft yet, the window takes the whole budget.
    first = results[0].proposal
    assert first.n_drafts == 0 and len(first.branch_tokens) == 9  # the root + 9 guesses


def test_same_seed_same_run_and_build_from_config():
    def trace(seed: int) -> list[tuple[list[int], list[int], list[int]]]:
        results = run_toy(lookahead(level=4, window=5, guess=3, seed=seed), budget=16, steps=12)
        return [(s.proposal.tokens, s.proposal.branch_tokens, s.tokens) for s in results]

    assert trace(5) == trace(5)
    assert trace(5)[0][1] != trace(6)[0][1]
    # Each request starts from the seed, whatever ran before it (resumed runs match).
    drafter = lookahead(level=4, window=5, guess=3, seed=5)
    drafter.reset(PROMPT)
    fresh = [column[:] for column in drafter.window.columns]
    drafter.reset(PROMPT[::-1])
    drafter.reset(PROMPT)
    assert drafter.window.columns == fresh

    drafter = lookahead()
    assert drafter.name == "lookahead" and isinstance(drafter.sources["lookahead"], PoolSource)
    assert (drafter.window.level, drafter.window.window, drafter.max_drafts) == (5, 7, 7)


def test_lookahead_proposals_keep_the_sampling_distribution():
    drafter = lookahead(level=3, window=3, guess=4)
    drafter.reset([1, 2, 3, 4, 5])
    for ngram in ([5, 1, 2], [5, 1, 3], [5, 4, 0], [5, 2, 2]):
        drafter.sources["lookahead"].pool.add(ngram)
    proposal = drafter.propose([1, 2, 3, 4, 5], budget=32)
    assert proposal.branch_tokens  # the window rides along, unverified
    assert_lossless(proposal, vocab=6)


def test_only_a_drafter_whose_sources_all_need_the_window_has_a_minimum_budget():
    # Lookahead's pool is filled by its window alone: it needs two columns of 4 rows (the
    # root's column counts the root). HD's W reads the prompt, S and L are databases.
    lookahead, hd = drafter_from_config("lookahead"), drafter_from_config("hd")
    assert lookahead.min_budget == 7
    assert lookahead.sources["lookahead"].needs_window
    assert hd.min_budget == 1
    assert not hd.sources["W"].needs_window and not hd.sources["L"].needs_window


def test_the_pool_remembers_the_fewest_window_columns_that_put_each_continuation_there():
    pool = NGramPool(capacity=2)
    pool.add([1, 2, 3], columns=5)  # harvested by column 4
    pool.add([1, 2, 3], columns=2)  # again, by column 1: a window of 2 columns has it too
    pool.add([1, 2, 3], columns=7)
    assert pool.columns(1, [2, 3]) == 2
    pool.add([1, 4, 5])  # from the prompt or the accepted text: no window needed
    assert pool.columns(1, [4, 5]) == 0
    pool.add([1, 6, 7], columns=3)  # full: [2, 3] is evicted, and so is what it needed
    assert pool.columns(1, [2, 3]) == 0 and (1, (2, 3)) not in pool.origins
    pool.add([1, 2, 3], columns=4)
    assert pool.columns(1, [2, 3]) == 4 and len(pool.origins) == len(pool) == 2


def test_drafts_carry_the_columns_that_harvested_them():
    drafter = lookahead()
    results = run_toy(drafter, 55, steps=30)
    drafted = [step.proposal for step in results if step.proposal.n_drafts]
    assert drafted  # the window's n-grams were drafted
    # Lookahead's pool is the window's alone: every draft needed a column, at most all 7.
    assert all(1 <= c <= 7 for p in drafted for c in p.columns)
    assert any(c > 2 for p in drafted for c in p.columns)  # beyond a 15-node window's 2
    # HD's W also reads the prompt: a draft of the prompt's n-grams needs no column.
    hd = drafter_from_config("hd", "drafter.order=[W]")
    hd.reset([1, 2, 3, 4, 5, 1])
    proposal = hd.propose([1, 2, 3, 4, 5, 1], budget=10)
    assert proposal.tokens[:4] == [2, 3, 4, 5] and proposal.columns[:4] == [0] * 4


def test_a_draft_a_wider_window_harvested_needs_a_budget_whose_window_has_its_column():
    """Lookahead at 55 (window 27 of 55 nodes): under a budget ``b`` the window keeps
    ``int(b * 27/55)`` nodes in whole columns of 4 (the root's column 3), the drafts the rest."""
    drafter = lookahead()
    run_toy(drafter, 55, steps=6)  # warmed up: columns of 4 rows
    proposal = Proposal()
    proposal.add_path([1, 2, 3, 4], "lookahead", 55, columns=3)  # nodes 0-3, column 2's harvest
    for first in range(20, 26):
        proposal.add_path([first, 2, 3, 4], "lookahead", 55)  # nodes 4-27, from the prompt
    assert proposal.n_drafts == 28
    # Node 0, needing 3 columns, from 23 nodes (23 * 27/55 = 11.3: three columns, 11 nodes;
    # 12 left for the drafts); at 22 the window keeps two columns (10.8). Node 4, needing
    # none, from 5 (2.5: no column). Node 20: 36 nodes leave 21 for the drafts (17.7: four
    # columns, 15 nodes), 35 only 20.
    assert drafter.smallest_budgets(proposal, [0, 4, 20], 55) == [23, 5, 36]
    proposal.columns[0] = 0
    assert drafter.smallest_budgets(proposal, [0], 55) == [1]
    # Nothing smaller holds it: the budget verified.
    proposal.columns[0] = 8
    assert drafter.smallest_budgets(proposal, [0], 55) == [55]
    # Without a window, the first nodes of a larger tree.
    assert drafter_from_config("pld").smallest_budgets(proposal, [0, 5], 10) == [1, 6]

"""The automatic verification budget (``engine.budget=auto``): per step, the number of tree
nodes expected to give the most tokens per second, from the measured cost curve and the
drafter's own acceptance in this request.

Model. A step that verifies ``b`` nodes gains ``1 + a`` tokens (``a`` accepted drafts) and
costs about ``latency(1 + proposed)``, where ``proposed <= b`` is what the drafter filled (a
drafter with nothing to draft proposes nothing, and then a large budget costs nothing). Over
many steps, tokens per second under ``b`` is ``E[1 + a | b] / E[cost | b]`` (renewal-reward:
a ratio of expectations), so each candidate budget keeps running means of tokens gained and
of cost per step (forgetting with a horizon of ``memory`` steps: acceptance drifts with the
content), starting from a prior: ``a(b) = 1 - 2^-b``, a chain whose drafts are each accepted
with probability 1/2, saturating at one accepted draft a step (Spec-Bench's published MAT for
PLD, REST and Lookahead is 1.6 to 1.8). ``b = 0`` is an AR step, known exactly.

Measuring methods, not the policy (what the first version got wrong):
- Candidates are the budgets that fill a forward the cost curve measures exactly (``size -
  1``: 1, 2, 3, 4, 7, 8, 15, 16, ... for its sizes; see ``candidate_budgets``) up to
  ``max_budget``, the drafter's published budget, and the smallest that lets the drafter
  work (``drafter.min_budget``: a Jacobi window needs room for two columns and a draft;
  below that it never fills its pool. Token Recycling needs as many rows learned a step as
  its first level has nodes: it learns the rows of the tokens it verifies, so a smaller tree
  trains fewer rows and drafts worse in later steps, which no scoring of a step sees.
  Measured on ``make bench``'s prompts: Suffix+TR at auto verified 4 nodes in most steps at
  MAT 1.22 while a fixed 8 reached MAT 1.36 at the same forward time; with the floor, auto's
  MAT was 1.36). For a drafter with a window the learning floor is soft
  (``learning_floor``): a budget below the floor is chosen once measured ``floor_margin``
  (5%) faster. Where 4 tokens a forward cost much less than 8 (fp32 without AVX-512), a
  hard floor held HD+TR at 7 nodes where a fixed 3 was 1.09x as fast. Budgets below the
  floor are measured in pairs inside the floor's steps, as every narrower budget is
  (``measures_smaller`` below), not only in their own: read off a 4-step block of their
  own, at a moment the pool was empty, 3 nodes looked 0.7x as fast as 7 and were never
  tried again, and HD+TR at ``auto`` verified 7 nodes in 120 of 265 steps and 1 node in 48
  (bf16, AVX-512: 7 nodes cost 1.15x what 3 do) where a fixed 4 ran 1.03x as fast in
  pairs (MAT 1.37; a fixed 3: 1.35, a fixed 7: 1.36). A pair reads a narrower tree's
  drafts trained as the floor trains, an upper bound on what it gains; the rows it would
  not learn cost about 1% of MAT on ``make bench``'s prompts (fixed 3 against 7: 1.35
  against 1.36 in bf16, 1.30 against 1.32 in fp32), inside the margin.
- Delayed payoff: a choice is held for ``block`` steps, so what a window harvests in one step
  and drafts in the next is credited to the budget that paid for it.
- Exploration is not local: every ``explore_every`` steps one other candidate is tried for a
  block, however far it is from the current choice (the one tried longest ago, the widest of
  equally promising ones; for a nested drafter the widest worth trying, whose shadow measures
  every budget below it), so a drafter judged at a bad moment is judged again. Each try that
  leaves the choice as it was doubles the gap to the next (up to 8 times), so a settled
  policy spends a few percent of its steps exploring. Only candidates whose estimate is at
  least ``explore_floor`` (half) of the best's are tried: a budget that costs several AR
  steps a step is not tried where it cannot pay.
  An untried budget wider than every observed one is valued by the prior's chain with its
  per-draft acceptance fitted to the widest budget observed in this request (before any
  observation, the prior itself: 1/2; a budget estimated lower is still tried when
  exploring), or at the most tokens a step any smaller budget showed, whichever is more (a
  larger tree holds the smaller one, so it gains as much); one between observed budgets,
  between their measures (``expected_tokens``). Valued at the unfitted prior (about 2 tokens
  a step), every untried wider budget looked better than the 1.1-1.5 tokens measured, so
  each request of a drafter with a Jacobi window began by verifying 16 and then 32 nodes
  for a block each (HD+TR, Lookahead), about 5% of a 64-token answer's time.
- A drafter with a window measures every narrower budget in the steps it verifies, as a
  drafter without one does (``measures_smaller``): it says, per accepted node, the smallest
  budget that would have drafted it (``SourceDrafter.smallest_budgets``), which counts the
  window's columns as well as the drafts' room, since a draft the window's column ``c``
  harvested exists only under budgets whose window has that column (a narrower window's
  columns iterate as the wider one's first columns). So the pool a wide window fills, which
  pays in later steps, is credited to the width that filled it, and a narrower budget's
  steps are no longer read off a pool a wider window filled. Such a drafter opens each
  request at the widest budget the priors price within ``wider_margin`` of the fastest
  (``opening``), explores only wider budgets, and a step cut short near the answer's end
  still counts for the budget chosen. Where every size costs about the same (an H200's
  curve, probed on this CPU), with blocks of its own steps alone HD and Lookahead at auto sat
  at 15 nodes in most steps (6 answers: 262 steps at MAT 1.37 and 299 at MAT 1.20), where
  their published 55 took 225 and 285 steps; so measured, both verify 55 nodes as the
  published form does, in the same steps.
- A drafter with a window that does not say so (no ``smallest_budgets``) measures each
  budget in its own steps; a wider budget is chosen over a narrower one only if it
  promises ``wider_margin`` (5%) more tokens a second. Its cost is known (the curve), its
  gain is an estimate, and two budgets' estimates come from different moments of the answer:
  the policy widens when the text is easy to draft, so the wider budget's mean holds the
  easy stretches and the narrower one's the hard ones. On 12 of ``make bench``'s prompts,
  HD+TR at auto verified 16 nodes in 154 steps (1.85 tokens a step, against 1.48 in its
  steps of 8), at MAT 1.69 and 35.9 tokens/s, where a fixed 8 made MAT 1.62 at 40.7
  tokens/s. The margin is at most the wider forward's extra time on the curve (``margin``):
  a wider tree holds the narrower one's drafts, so a wrong widening loses at most that
  time, and a larger margin kept HD at 1 node where 3 cost no more.
- A drafting budget is preferred to AR steps unless AR beats it by more than
  ``draft_margin`` (10%): on a shared CPU, run-to-run noise (about 5%) and the cost curve's
  own error make a smaller verdict unreliable, and a drafter whose drafts are accepted
  should be measured drafting. The budget so preferred is the fastest of those accepting
  drafts (``min_gain`` more tokens a step than AR), and while none is, the fastest drafting
  budget all the same: drafts not accepted for a stretch cost only the curve's price of a
  few more tokens, while AR steps, once acceptance resumes, lose the drafts a step would
  have accepted until the shadow's estimate rises again. On ``make bench``'s prompts, where
  2 to 5 tokens cost 1.04x one, the policy took AR steps in such stretches (the suffix tree
  in 40 of 296 steps, MAT 1.22 against a fixed 8's 1.24; REST in 73 of 322, MAT 1.11
  against 1.17). Where drafting costs more than the margin (fp32 here: 2 tokens cost 1.27x
  one), a drafter whose drafts are not accepted still falls to AR steps.
- Every request starts from the same state (``reset``: the curve and the priors), so a
  question's budgets never depend on the questions before it.
- One step informs every smaller budget (``nested``: drafters without a window, whose
  proposal under a smaller budget is the first nodes of a larger one, parents first). A
  step that verified ``b`` nodes shows what any ``c < b`` would have gained: the accepted
  path's nodes up to the first one numbered ``c`` or more. (Starting each request at the
  widest budget worth trying, to measure all budgets below at once, was tried and measured
  slower: a first block at a bad moment sent PLD and the suffix tree to AR steps.)
- A nested drafter's larger budget is valued by what it adds, measured in the same steps:
  its estimate is the smallest budget's tokens a step (measured at every drafting step) plus,
  for each candidate up to it, the mean of what that candidate gained over the one below in
  the steps that drafted both. Means of each budget's own steps compare different moments of
  the answer: on ``make bench``'s prompts the suffix tree's 8 nodes, drafted in 8 steps,
  averaged 1.13 tokens a step while its 4 nodes, drafted in most steps, averaged 1.22, though
  every tree of 8 holds the tree of 4 and gains at least as much in every step. The policy
  then verified 1 to 4 nodes or took AR steps (MAT 1.20) where a fixed 8 reached 1.23 at
  the same forward time. Valued so, a nested drafter's wider budget needs no
  ``wider_margin``: with the margin, where the curve was flat from 1 to 4 tokens, the suffix
  tree verified 1 or 2 nodes in 237 of 304 steps (MAT 1.19, a fixed 8: 1.24), the wider
  budgets' few percent more tokens a step falling inside the margin.
  What a wider budget adds is estimated apart after steps whose smallest budget accepted a
  draft and after those where it did not (``nested_gains``): drafts accepted in bursts (PLD,
  REST) made an answer's first block of misses read as "wider trees gain nothing", and PLD
  then verified 1 node until an exploration shadow caught a burst. Replayed on ``make
  bench``'s prompts in fp32, priced by the AVX-512 EPYC's curve (bf16: 4 tokens a forward
  1.07x one), PLD at auto went from 0.970 to 0.998 of a fixed 3's tokens per curve-second
  and REST from 0.968 to 1.000; priced by the curve of the EPYC without AVX-512 (fp32: 2
  tokens 1.39x one), where AR steps pay, from 1.131 to 1.126 and 1.173 to 1.190
  (``benchmarks/amd-epyc-2t/2026-11-29-replay-hit-split-*``).
  A nested budget's cost is what the drafter fills of it (``nested_costs``): a step that left
  a budget unfilled shows every wider budget proposing the same nodes, so only what a wider
  budget adds once the narrower one was filled is estimated, each estimate starting from the
  curve's price of a full tree counted as ``cost_prior_steps`` (4) steps. Each budget's own
  mean from that prior kept 4 nodes 2-3% dearer than 3 for the suffix tree, which fills a
  4th node about one step in 100, and it verified 3 nodes in every step where a fixed 4 was
  0.5% faster.
- AR steps still measure the method: beside each, the engine drafts the best drafting
  budget's proposal without verifying it (``shadow_budget``) and, once the tokens that follow
  are known, records what verification would have accepted (nested drafters only: their
  proposals do not depend on being verified). A policy that took AR steps after a bad start
  thus learns, at the cost of drafting alone, when drafting pays again.
- Nested drafters explore by shadow too: an exploration block keeps verifying the best
  budget and drafts the explored (larger) one beside it, unverified; smaller budgets need no
  exploring at all, every step of a larger one measures them. Verifying an explored budget
  cost a 64-token answer up to a few verification forwards of 17 to 33 nodes (1.5 to 2.2 AR
  steps each) every time, since every request starts afresh.
- A drafter with a Jacobi window gets no AR steps (``allow_ar=False``): its window is all
  that fills its pool, so an AR step starves the steps after it, and a policy that once
  chose AR would judge the method by an empty pool. Its smallest budget is the smallest
  that lets it work; at worst the method runs there, slower than AR, and shows it. The same
  holds for a drafter that learns from what it verifies (``min_budget`` above 1: Token
  Recycling trains one row an AR step instead of 9, so drafts scored beside AR steps got
  worse the longer it stayed there; Suffix+TR took 36 AR steps in 283 and reached MAT 1.26
  where a fixed 8 reached 1.36).
- Exploring by verifying (drafters with a window) is only spent on budgets estimated at
  ``explore_floor_verified`` (80%) of the best's rate or more, not half: a block of 4 steps
  at a budget estimated at half the best costs 2 AR steps' worth of time, and Lookahead
  verified 32 nodes for a block in most 64-token answers (1.6x an 8-node step on this CPU)
  where a fixed 32 was 0.8x as fast as a fixed 8. And it is spent only within
  ``explore_allowance`` (1%) of the request's steps, in expected lost steps (``affordable``):
  a 64-token answer is too short to earn back a block at a budget estimated at 0.8 of the
  best, and Lookahead lost about 1.3% of its time verifying 15 nodes in such blocks.
- Of candidates that the curve prices alike, a drafter with a window keeps only the widest
  (``without_narrower_alike``): it holds the narrower trees' drafts at the same price, and
  estimates of trees so alike only split the steps (on a GPU's flat curve, HD's blocks at
  32 nodes read below its steps at 8, and auto sat at 8 where a fixed 55 was 1.13x as fast).

Budgets only change what is verified, never what is emitted: greedy outputs are identical for
every budget. The choice is deterministic (no random exploration), so runs repeat.
"""

from __future__ import annotations

import math

from spec_bench.engine.cost import LatencyCurve
from spec_bench.engine.nested_costs import FillSplitCosts
from spec_bench.engine.nested_gains import HitSplitGains

MAX_GAP_FACTOR = 8  # a settled policy still explores every 8 x explore_every steps
RATE_TIE = 0.01  # rates this close are equal: the cost curve's medians repeat within ~1%


def candidate_budgets(
    max_budget: int,
    paper_budget: int = 0,
    min_budget: int = 1,
    allow_ar: bool = True,
    forward_sizes: list[int] | None = None,
) -> list[int]:
    """0 (an AR step) unless ``allow_ar`` is off, then the drafting budgets within [min, max]:
    the published one, the smallest that lets the drafter work, and either powers of two or,
    given the sizes the cost curve measures (tokens a forward, the root included), the
    budgets that fill one of those forwards exactly (``size - 1``).

    Such budgets are what the curve prices without interpolating, and its sizes hold both
    sides of where kernels working in groups of rows get dearer: on the 2-core EPYC (bf16,
    rows in passes of up to 8) a forward of 9 tokens (budget 8) cost 17.4 ms against 16.0 for
    8 tokens (budget 7), 65 tokens 88 against 63 for 64. Which side pays depends on the
    drafter: on ``make bench``'s prompts Token Recycling at a fixed 7 ran 1.04x as fast as at
    8 (MAT 1.250 at both), HD at 7 reached MAT 1.25 against 1.35 at 8 (its window's room), so
    both are candidates."""
    if forward_sizes is None:
        budgets = {1 << k for k in range(max_budget.bit_length()) if 1 << k <= max_budget}
    else:
        budgets = {size - 1 for size in forward_sizes if 1 <= size - 1 <= max_budget}
    if 0 < paper_budget <= max_budget:
        budgets.add(paper_budget)
    if forward_sizes is not None and 1 < min_budget <= max_budget:
        budgets.add(min_budget)  # the floor itself, not the aligned budget above it
    drafting = sorted(b for b in budgets if b >= max(min_budget, 1))
    return [0] * allow_ar + (drafting or [max(max_budget, 1)])


def chain_accepted(rate: float, budget: int) -> float:
    """Expected drafts accepted from a chain of ``budget`` drafts each accepted with
    probability ``rate`` given its parent was: ``rate + rate^2 + ... + rate^budget``."""
    if rate >= 1.0:
        return float(budget)
    return rate * (1.0 - rate**budget) / (1.0 - rate)


def chain_acceptance_rate(accepted: float, budget: int) -> float:
    """The per-draft rate at which a chain of ``budget`` drafts accepts ``accepted`` a step
    (bisection: ``chain_accepted`` increases with the rate)."""
    if accepted <= 0.0:
        return 0.0
    if accepted >= budget:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if chain_accepted(middle, budget) < accepted else (low, middle)
    return (low + high) / 2


class AutoBudget:
    def __init__(
        self,
        curve: LatencyCurve,
        candidates: list[int],
        block: int = 4,
        explore_every: int = 8,
        memory: int = 32,
        draft_margin: float = 0.1,
        wider_margin: float = 0.05,
        min_gain: float = 0.05,
        explore_floor: float = 0.5,
        explore_floor_verified: float = 0.8,
        explore_allowance: float = 0.01,
        nested: bool = False,
        measures_smaller: bool | None = None,
        learning_floor: int = 0,
        floor_margin: float = 0.05,
        prior_pairs: int | None = None,
        cost_prior_steps: int | None = None,
    ) -> None:
        if block < 1 or explore_every < 1 or memory < 1:
            raise ValueError("need block, explore_every and memory >= 1")
        if not candidates or candidates[0] < 0 or sorted(set(candidates)) != list(candidates):
            raise ValueError(f"candidates must be >= 0 and increase, got {candidates}")
        if candidates == [0]:
            raise ValueError("candidates need a drafting budget besides 0")
        self.curve = curve
        self.candidates = list(candidates)
        self.drafting = [b for b in self.candidates if b > 0]
        self.nested = nested
        # Whether a step measures every smaller budget (``record``'s accepted nodes are
        # numbered so a tree of ``c`` nodes holds those below ``c``): a nested drafter, and a
        # drafter with a window that says which budget would have held each accepted node.
        self.measures_smaller = nested if measures_smaller is None else measures_smaller
        self.block = block
        self.explore_every = explore_every
        self.memory = memory
        self.draft_margin = draft_margin
        # Wider budgets valued by paired increments (``measured_tokens``), measured in the same
        # steps as the narrower ones, need no margin for different moments.
        self.wider_margin = wider_margin if not self.measures_smaller else 0.0
        # How much slower by the priors a budget may be to open a request with a window.
        self.opening_margin = wider_margin
        self.min_gain = min_gain
        # Budgets below ``learning_floor`` train a learning source less a step: chosen only on
        # their own measure, and only when faster than the floor's choice by ``floor_margin``.
        self.learning_floor = learning_floor
        self.floor_margin = floor_margin
        # The budgets a step measures in pairs: all of them, below a learning floor too (see
        # the module's notes on the floor).
        self.ladder = list(self.drafting) if self.measures_smaller else []
        # Shadow exploration costs drafting time only; verified exploration costs forwards.
        self.explore_floor = explore_floor if nested else explore_floor_verified
        # Verified exploration's expected loss, in steps, is kept within this share of the
        # request's steps so far (shadow exploration costs no forwards and is not counted).
        self.explore_allowance = explore_allowance
        # A drafter with a window pairs a wider budget with the narrower ones only in the steps
        # that verify it (a nested drafter also in shadow steps), often a block or two in an
        # answer. Its increments start at the prior's and count it as ``prior_pairs`` steps, so
        # that a first block gaining nothing (an answer's first steps, a pool still empty) does
        # not price a wider budget at no gain for the rest of the answer: with the CPU's curve
        # injected, HD+Suffix at ``auto`` verified 1 node in 98 of 278 steps (MAT 1.29, fixed 3:
        # 1.36), its increments 0 after the opening block; counting the prior as a block, 3 in
        # 166 of 266 (MAT 1.35).
        if prior_pairs is None:
            prior_pairs = block if self.measures_smaller and not nested else 0
        self.prior_pairs = prior_pairs
        # A nested drafter's wider budgets: what they add, split by hits (``nested_gains``).
        self.gains = HitSplitGains(self.ladder, memory, after_miss_prior_steps=block) if nested else None
        # A nested drafter's budget costs what the drafter fills of it, read off its steps;
        # the curve's price of a full tree is counted as this many of them, so a few steps
        # where PLD found no match (one node proposed at any budget) do not make 15 nodes look
        # free: on the AVX-512 curve, PLD at auto then verified 4, 7, 8, 10 and 15 nodes in
        # turn through an answer's unmatched stretch, paying for its next matches at 15 ...
        if cost_prior_steps is None:
            cost_prior_steps = 4 if nested else 0
        self.cost_prior_steps = cost_prior_steps
        # ... and a wider one costs what the drafter filled of it beyond that (``nested_costs``).
        self.costs = FillSplitCosts(self.ladder, curve.latency, memory, cost_prior_steps) if nested else None
        self.reset()

    def reset(self) -> None:
        """The initial state: priors for every candidate, nothing observed, nothing held."""
        self.tokens = {b: 2.0 - 0.5**b for b in self.candidates}
        self.seconds = {b: self.curve.latency(1 + b) for b in self.candidates}
        self.observed = dict.fromkeys(self.candidates, 0)
        # A windowed drafter whose steps measure smaller budgets: per drafting budget above the
        # smallest, the mean of what it gained over the next smaller one in the steps that
        # drafted both, and how many (a nested drafter's are split by hits: ``self.gains``).
        self.increment = dict.fromkeys(self.drafting, 0.0)
        self.paired = dict.fromkeys(self.drafting, 0)
        if self.prior_pairs:
            for below, larger in zip(self.ladder, self.ladder[1:]):
                self.increment[larger] = self.tokens[larger] - self.tokens[below]
        if self.gains is not None:
            self.gains.reset()
        if self.costs is not None:
            self.costs.reset()
        self.chain_rate: float | None = None  # fitted to the widest observed (None: refit)
        self._rates: dict[int, float] = {}  # estimates since the last observation
        self.tried_at = dict.fromkeys(self.candidates, 0)
        self.explore_spent = 0.0  # steps verified exploration is expected to have lost
        self.steps = 0
        self.gap = self.explore_every  # steps between exploration blocks
        self.next_exploration = self.explore_every
        self.current = self.best()
        # The budget the current block explores (0: none): verified, or for a nested drafter
        # drafted unverified beside the best budget's steps.
        self.exploring = 0
        self.held = 0  # steps left in the current block
        if self.measures_smaller and not self.nested:
            self.current, self.held = self.opening(), self.block

    def opening(self) -> int:
        """The budget a drafter with a window verifies for its first block: the widest whose
        prior rate is within ``opening_margin`` of the fastest's. Its steps measure every
        narrower budget, with the drafts only its wider window harvested taken out
        (``SourceDrafter.smallest_budgets``); a narrower opening measures no wider one, whose
        window pays in later steps and shows little in one block. Opening at the fastest by
        the priors (15 nodes, 1.2% cheaper than 55 on an H200's curve), HD verified 15 nodes
        for the first 8 steps of every answer. The fastest as ``best`` takes it, of every
        budget, a learning floor's narrower ones too: opening at the floor (HD+TR's 7 nodes,
        1.15x the time of 3 in bf16) cost a block of its price in every answer."""
        top = self.rate(self._fastest_among(self.ladder))
        return max(b for b in self.ladder if self.rate(b) * (1 + self.opening_margin) >= top)

    def expected_tokens(self, budget: int) -> float:
        """Tokens a step: observed; for an untried budget between observed ones, interpolated
        in log budget between its nearest observed neighbours; narrower than every observed
        one, the prior's chain fitted to the nearest; wider, the chain fitted to the widest
        observed budget, or the most any smaller observed budget gains, whichever is more
        (before any observation, the prior itself).

        A chain fitted to a wide tree overrates a narrow one: a tree's acceptance comes from
        its breadth, a chain's from its length, and a chain saturates after a few drafts. On a
        flat curve (an H100, where 128 tokens cost what one does), with acceptance shaped like
        HD's there, a measured 31 nodes made an untried 2 look nearly as good, and the
        narrowest of budgets within ``wider_margin`` won; on the H100 itself HD at auto verified
        1 to 4 nodes in 272 of about 296 steps (MAT 1.18) where a fixed 55 reached MAT 1.58."""
        if self.observed[budget] or budget == 0 or self.gains is not None:
            return self.measured_tokens(budget)
        observed = [b for b in self.drafting if self.observed[b]]
        if not observed:
            return self.tokens[budget]
        wider = [b for b in observed if b > budget]
        if wider:
            high = min(wider)
            narrower = [b for b in observed if b < budget]
            if not narrower:
                rate = chain_acceptance_rate(self.measured_tokens(high) - 1.0, high)
                return 1.0 + chain_accepted(rate, budget)
            low = max(narrower)
            share = math.log(budget / low) / math.log(high / low)
            low_tokens = self.measured_tokens(low)
            return low_tokens + share * (self.measured_tokens(high) - low_tokens)
        if self.chain_rate is None:  # every estimate of a step reads it: fitted once
            anchor = max(observed)  # the widest measured: what is known of wide trees
            self.chain_rate = chain_acceptance_rate(self.measured_tokens(anchor) - 1.0, anchor)
        smaller = [self.measured_tokens(b) for b in observed if b < budget]
        return max([1.0 + chain_accepted(self.chain_rate, budget), *smaller])

    def measured_tokens(self, budget: int) -> float:
        """Tokens a step at an observed ``budget``: its own mean, or where steps measure
        smaller budgets, the smallest paired budget's mean plus the paired increments up to
        ``budget`` (where every one of them was measured)."""
        if budget not in self.ladder or budget <= self.ladder[0]:
            return self.tokens[budget]
        if self.gains is not None:
            return self.tokens[self.ladder[0]] + self.gains.added(budget)
        total = self.tokens[self.ladder[0]]
        for larger in self.ladder[1:]:
            if larger > budget:
                break
            if not self.paired[larger]:
                return self.tokens[budget]
            total += self.increment[larger]
        return total

    def rate(self, budget: int) -> float:
        """Estimated tokens per second when verifying ``budget`` nodes per step, kept until
        the next observation: a choice reads every candidate's rate several times (on a
        simulated nested drafter the policy took 28 us a step recomputing them, 20 keeping
        them)."""
        if budget not in self._rates:
            self._rates[budget] = self.expected_tokens(budget) / self.cost(budget)
        return self._rates[budget]

    def cost(self, budget: int) -> float:
        """Seconds a step verifying ``budget`` nodes is estimated to take: its own mean, or for
        a nested drafter's ladder budget above the narrowest, the narrowest's mean plus what
        the drafter is estimated to fill beyond it (``nested_costs``)."""
        if self.costs is None or budget not in self.ladder or budget <= self.ladder[0]:
            return self.seconds[budget]
        return self.seconds[self.ladder[0]] + self.costs.added(budget)

    def explorable(self, best: int) -> list[int]:
        """Drafting budgets other than ``best`` worth a try: estimated at least
        ``explore_floor`` of its rate."""
        floor = self.explore_floor * self.rate(best)
        return [b for b in self.drafting if b != best and self.rate(b) >= floor]

    def exploration_cost(self, budget: int, best: int) -> float:
        """Steps a verified block at ``budget`` is expected to lose against ``best``: the
        block's length times the share of ``best``'s rate it is estimated to fall short by."""
        return self.block * max(0.0, 1.0 - self.rate(budget) / self.rate(best))

    def affordable(self, budget: int, best: int) -> bool:
        """Whether verifying ``budget`` for a block keeps verified exploration's expected loss
        within ``explore_allowance`` of the steps so far. Every request starts afresh, so in a
        short answer a budget estimated well below the best is never verified: on ``make
        bench``'s 64-token answers (fp32, no AVX-512) Lookahead verified 15 nodes, estimated
        at 0.81 of 8 nodes' rate and 0.87-0.91 of it as fast at a fixed budget, in 31 of 318
        steps, a loss of about 1.3%; budgets estimated near the best cost little and are still
        tried early."""
        cost = self.exploration_cost(budget, best)
        return self.explore_spent + cost <= self.explore_allowance * self.steps

    def fastest_drafting(self) -> int:
        """The drafting budget with the highest estimated rate, or a smaller one within
        ``margin`` of it (``wider_margin``, or less where widening costs less): a wider budget
        must promise more than that to be chosen. A nested drafter (no margin) takes, of the
        budgets equally fast within ``RATE_TIE`` (the cost curve's own resolution), the widest
        whose estimated cost (``cost``) is within ``RATE_TIE`` of the cheapest of them: it
        holds the narrower trees' drafts at no more cost, and each of its steps measures every
        narrower budget.
        (Taking the narrowest, the suffix tree verified 1 or 2 nodes in 82 of 305 steps,
        mostly early in an answer, before any budget had shown a gain; its proposals, a node
        or two a step, cost no more at 16 nodes. Taking the widest of equally fast budgets
        whatever it cost, PLD verified 4 nodes in 133 of 299 steps, where a match of 10 tokens
        makes 4 cost 4% more than 3 and a fixed 4 ran 0.977x as fast as a fixed 3; replayed on
        the AVX-512 curve, auto made 0.988 of the fixed 3's speed, 0.998 with this rule.)

        Budgets below ``learning_floor`` (offered only to a drafter with a window) compete
        apart: the fastest of them replaces the choice above the floor only once it has been
        measured for a block (in pairs, in the floor's steps) and is estimated
        ``floor_margin`` faster."""
        learned = [b for b in self.drafting if b >= self.learning_floor] or self.drafting
        choice = self._fastest_among(learned)
        below = [b for b in self.drafting if b < learned[0] and self.observed[b] >= self.block]
        if below:
            narrow = self._fastest_among(below)
            if self.rate(narrow) > (1 + self.floor_margin) * self.rate(choice):
                return narrow
        return choice

    def _fastest_among(self, budgets: list[int]) -> int:
        """``fastest_drafting``'s rule within ``budgets``: for a nested drafter, the widest of
        those within ``RATE_TIE`` of the fastest that costs no more than the cheapest of them
        (within ``RATE_TIE``); for a windowed one whose steps measure smaller budgets, the
        widest within ``RATE_TIE`` of the fastest; else the narrowest whose rate is within
        ``margin(narrow, fastest)`` of it."""
        if self.nested:
            near = self._near_fastest(budgets, RATE_TIE)
            cheapest = min(self.cost(b) for b in near)
            return max(b for b in near if self.cost(b) <= (1 + RATE_TIE) * cheapest)
        if self.measures_smaller:
            return max(self._near_fastest(budgets, RATE_TIE))
        top = max(budgets, key=self.rate)  # the first of equals: the narrowest
        return min(
            b for b in budgets if b <= top and self.rate(b) * (1 + self.margin(b, top)) >= self.rate(top)
        )

    def margin(self, narrow: int, wide: int) -> float:
        """What the wider of two budgets must promise over the narrower to be chosen (a
        drafter with a window): ``wider_margin``, or the extra time the curve prices the
        wider one's forward at where that is less (but at least ``RATE_TIE``, its resolution).

        The margin guards against a gain overrated by chance: a wider tree holds the
        narrower one's drafts, so wrongly chosen it loses at most its extra time, while a
        margin larger than that forgoes up to the margin. With one 5% margin, HD at ``auto``
        verified 1 node in 97 of 301 steps where 2 and 4 tokens cost the same (the AVX-512
        EPYC, bf16: 15.6 ms), and in 136 of 299 on the fp32 EPYC (2 tokens 82.4 ms, 4 tokens
        84.0), where a fixed 3 ran 1.05x as fast in the grid (1.01x re-timed in pairs)."""
        extra = self.curve.latency(1 + wide) / self.curve.latency(1 + narrow) - 1.0
        return min(self.wider_margin, max(RATE_TIE, extra))

    def _near_fastest(self, budgets: list[int], margin: float) -> list[int]:
        """The ``budgets`` whose estimated rate is within ``margin`` of the fastest of them."""
        rates = {b: self.rate(b) for b in budgets}
        top = max(rates.values())
        return [b for b, rate in rates.items() if rate * (1 + margin) >= top]

    def best(self) -> int:
        """The fastest drafting budget if it beats AR steps (or AR steps are off); else the
        fastest one whose drafts are accepted, unless AR steps beat it by more than the
        margin; else, while no drafts are accepted, the fastest drafting budget unless AR
        steps beat it by more than the margin; else AR steps."""
        rate_of = {b: self.rate(b) for b in self.candidates}
        fastest = self.fastest_drafting()
        if 0 not in rate_of or rate_of[fastest] >= rate_of[0]:
            return fastest
        working = [b for b in self.drafting if self.expected_tokens(b) >= 1.0 + self.min_gain]
        candidate = max(working, key=lambda b: (rate_of[b], -b)) if working else fastest
        if rate_of[candidate] >= (1 - self.draft_margin) * rate_of[0]:
            return candidate
        return 0

    def choose(self) -> int:
        self.steps += 1
        if self.held > 0:
            self.held -= 1
            return self.current
        if self.exploring:  # the exploration block just ended
            if self.best() == self.exploring:
                self.gap = self.explore_every  # it changed the choice: keep looking around
            else:
                self.gap = min(2 * self.gap, MAX_GAP_FACTOR * self.explore_every)
            self.next_exploration = self.steps + self.gap
            self.exploring = 0
        best = self.best()
        choice = best
        if self.steps >= self.next_exploration:
            others = self.explorable(best)
            if self.measures_smaller:  # every step of ``best`` measures the smaller budgets
                others = [b for b in others if b > best or b not in self.ladder]
            if self.nested and others:
                # The widest: its shadow measures every budget between ``best`` and it in the
                # same steps. (Taking the one tried longest ago, PLD sat at budget 1 for most
                # of an answer on increments of 0 measured in its first four steps, its wider
                # budgets each re-measured once in 8-64 steps; see the module's notes.)
                self.exploring = max(others)
            elif others := [b for b in others if self.affordable(b, best)]:
                # The one tried longest ago; among equals the more promising, and among those
                # equally promising (within ``RATE_TIE``) the widest, whose measure bounds
                # every untried budget below it (see ``expected_tokens``). Where the forward
                # costs the same at any size (a GPU), every untried budget is equally promising,
                # and taking the first of them, HD explored 2, 3, then 7 nodes.
                oldest = min(self.tried_at[b] for b in others)
                untried = [b for b in others if self.tried_at[b] == oldest]
                self.exploring = max(self._near_fastest(untried, RATE_TIE))
                self.explore_spent += self.exploration_cost(self.exploring, best)
                self.tried_at[self.exploring] = self.steps
                choice = self.exploring
        self.current, self.held = choice, self.block - 1
        return choice

    def shadow_budget(self) -> int:
        """The budget whose proposal the engine drafts beside this step, unverified, and
        scores against the tokens that follow (0: none; the engine drafts it only when it is
        larger than the budget verified). Only for nested drafters, whose proposals do not
        depend on being verified. In an exploration block, the budget explored; beside AR
        steps, the fastest drafting budget, so the method is still measured while AR steps
        are faster, and drafting resumes when it would pay (not the widest: drafting time is
        not in the cost curve, and a wide shadow at every step, 64 nodes of a suffix tree, cost
        the suffix drafters 1-2 ms a step on average)."""
        if not self.nested:
            return 0
        if self.exploring:
            return self.exploring
        return self.fastest_drafting() if self.current == 0 else 0

    def record(
        self, budget: int, proposed: int, accepted_drafts: int, accepted_nodes: list[int] | None = None
    ) -> None:
        # A budget cut short (context window, token limit) counts for the candidate below, as
        # what that candidate's tree would have made: known only where steps measure smaller
        # budgets. For a drafter with a window it also counts for the budget chosen: the tree
        # is what that budget verifies where the answer is about to end, and a wide budget is
        # cut in most steps of a short answer (HD's 55 nodes in all but the first 9 of 64
        # tokens), so it would only be measured at the start.
        bucket = max((b for b in self.candidates if b <= budget), default=0)
        if self.measures_smaller and not self.nested and 0 < budget < self.current:
            bucket = self.current
        if bucket == 0:
            return
        if bucket < budget:
            if not self.measures_smaller or accepted_nodes is None:
                return
            accepted_drafts = min(_accepted_within(accepted_nodes, bucket), accepted_drafts)
            proposed = min(proposed, bucket)
        self._observe(bucket, 1 + accepted_drafts, self.curve.latency(1 + proposed))
        if bucket not in self.ladder or accepted_nodes is None:
            return
        gained = {bucket: 1 + accepted_drafts}
        for smaller in self.ladder:
            if smaller >= bucket:
                break
            gained[smaller] = 1 + min(_accepted_within(accepted_nodes, smaller), accepted_drafts)
            self._observe(smaller, gained[smaller], self.curve.latency(1 + min(smaller, proposed)))
        if self.gains is not None:
            self.gains.record(gained)
            self.costs.record(proposed, bucket)
            self._rates.clear()  # the estimates read the gains and costs too
            return
        for below, larger in zip(self.ladder, self.ladder[1:]):
            if larger > bucket:
                break
            self.paired[larger] += 1
            weight = 1.0 / min(self.paired[larger] + self.prior_pairs, self.memory)
            self.increment[larger] += weight * (gained[larger] - gained[below] - self.increment[larger])

    def _observe(self, budget: int, tokens: float, seconds: float) -> None:
        self.observed[budget] += 1
        self.chain_rate = None
        self._rates.clear()
        weight = 1.0 / min(self.observed[budget], self.memory)  # the first observation replaces the prior
        self.tokens[budget] += weight * (tokens - self.tokens[budget])
        weight = 1.0 / min(self.observed[budget] + self.cost_prior_steps, self.memory)
        self.seconds[budget] += weight * (seconds - self.seconds[budget])

    def summary(self) -> dict[int, dict[str, float]]:
        """Per candidate: observations, and the estimates its rate is made of: tokens per
        step (``expected_tokens``) over seconds per step (``cost``)."""
        return {
            b: {
                "observed": self.observed[b],
                "tokens_per_step": self.expected_tokens(b),
                "seconds_per_step": self.cost(b),
                "tokens_per_s": self.rate(b),
            }
            for b in self.candidates
        }


def _accepted_within(accepted_nodes: list[int], nodes: int) -> int:
    """Drafts a tree of its first ``nodes`` nodes would have accepted: nodes are numbered parents
    first, so the accepted path's first node numbered ``nodes`` or more ends that tree's path."""
    return next((i for i, node in enumerate(accepted_nodes) if node >= nodes), len(accepted_nodes))


def drafter_candidates(drafter, max_budget: int, forward_sizes: list[int] | None = None) -> list[int]:
    """The budgets ``auto`` chooses among for ``drafter``: from its smallest working budget,
    with AR steps only for a drafter that neither has a window nor learns from what it
    verifies (a window fills its pool, Token Recycling's verified nodes train its matrix: AR
    steps starve both; such a drafter's ``min_budget`` is above 1); aligned to
    ``forward_sizes`` where given (``candidate_budgets``). A drafter with a window also gets
    the budgets below its learning floor down to the smallest its window drafts at
    (``learning_floor``)."""
    windowed = getattr(drafter, "window", None) is not None
    min_budget = int(getattr(drafter, "min_budget", 1))
    paper_budget = int(getattr(drafter, "paper_budget", 0))
    allow_ar = not windowed and min_budget <= 1
    budgets = candidate_budgets(max_budget, paper_budget, min_budget, allow_ar, forward_sizes)
    floor = learning_floor(drafter)
    if floor:
        below = candidate_budgets(
            max_budget, paper_budget, int(drafter.window_budget), allow_ar, forward_sizes
        )
        budgets = sorted({*budgets, *(b for b in below if b < floor)})
    return budgets


def without_narrower_alike(candidates: list[int], curve: LatencyCurve) -> list[int]:
    """``candidates`` less each drafting budget that a wider candidate matches in price: the
    curve prices the wider one's forward within ``RATE_TIE`` of it (for a drafter with a
    window, which measures each budget in its own steps).

    Where they cost the same, the wider tree has more nodes for drafts or the window at no
    cost, and the two estimates, taken at different moments of the answer, only split the
    steps between them. Budgets come in pairs one node apart (``candidate_budgets``: 7 and 8,
    15 and 16) so that where a kernel's groups of rows make the second forward dearer, the
    first is there; where they cost the same (fp32, no AVX-512: 8 and 9 tokens 110.1 and
    110.8 ms), Lookahead at auto verified 7 nodes in 179 of 318 of ``make bench``'s steps,
    where a fixed 7 reached MAT 1.10 and a fixed 8 1.12. On a GPU every size up to 33 tokens
    costs the same (an H200, bf16, cuDNN planning each new shape: 60.1-60.6 ms): with 8 and 32
    nodes both candidates, HD's one 4-step block at 32 (1.25 tokens a step) read below its
    steps at 8 (1.29), and HD at auto verified 8 nodes in most steps (MAT 1.39) where a fixed
    32 reached 1.53 and its published 55 1.60, 1.13x auto's speed re-timed in pairs."""
    kept: list[int] = []  # widest first: a budget is matched only by one that stays
    for budget in sorted((b for b in candidates if b > 0), reverse=True):
        price = (1 + RATE_TIE) * curve.latency(1 + budget)
        if not any(curve.latency(1 + wider) <= price for wider in kept):
            kept.append(budget)
    return [b for b in candidates if b == 0 or b in kept]


def learning_floor(drafter) -> int:
    """The budget below which ``auto`` takes a budget only when clearly faster (0: no such
    floor, its smallest budget is a hard one): a drafter with a window whose smallest budget
    is set by a source that learns from what it verifies (HD+TR: Token Recycling's 7 nodes).

    A hard floor was set where 7 nodes cost about what 3 do (the AVX-512 EPYC, bf16). On the
    2-core EPYC without AVX-512 (fp32: 4 tokens a forward 84 ms, 8 tokens 98 ms) HD+TR at
    ``auto`` verified 7 nodes or more in 234 of 259 steps at MAT 1.35, while a fixed 3 reached
    MAT 1.31 and ran 1.09x as fast. Its budgets below the floor are measured in pairs in the
    floor's steps, and ``floor_margin`` covers the rows they would not learn (about 1% of
    MAT for HD+TR; see the module's notes). A nested drafter keeps a hard floor: without it,
    Suffix+TR verified 4 nodes in most steps at MAT 1.22 where a fixed 8 reached 1.36."""
    windowed = getattr(drafter, "window", None) is not None
    learning = int(getattr(drafter, "learning_budget", 1))
    window = int(getattr(drafter, "window_budget", 1))
    return learning if windowed and learning > window else 0


def configured_curve(cfg, target) -> LatencyCurve:
    """The cost curve ``auto`` reads for ``target``: cached, or measured afresh where
    ``engine.cost_refresh`` asks or none fits the settings."""
    from spec_bench.engine.cost import curve_options, load_latency_curve

    engine = cfg.engine
    refresh = bool(engine.get("cost_refresh", False))
    return load_latency_curve(target, cfg.cache_dir, **curve_options(engine), refresh=refresh)


def auto_budget(cfg, target, drafter, curve: LatencyCurve | None = None) -> AutoBudget:
    """``engine.budget=auto``: the configured curve unless ``curve`` is given (another
    machine's, to replay its decisions: ``benchmarks.policy_replay``), the drafter's
    candidates and the policy's settings."""
    engine = cfg.engine
    if curve is None:
        curve = configured_curve(cfg, target)
    windowed = getattr(drafter, "window", None) is not None
    candidates = drafter_candidates(drafter, int(engine.max_budget), curve.sizes)
    if windowed:
        candidates = without_narrower_alike(candidates, curve)
    return AutoBudget(
        curve,
        candidates,
        nested=not windowed,
        measures_smaller=not windowed or hasattr(drafter, "smallest_budgets"),
        learning_floor=learning_floor(drafter),
        floor_margin=float(engine.get("floor_margin", 0.05)),
        block=int(engine.block_steps),
        explore_every=int(engine.explore_every),
        memory=int(engine.acceptance_memory),
        draft_margin=float(engine.draft_margin),
        wider_margin=float(engine.get("wider_margin", 0.05)),
        explore_allowance=float(engine.get("explore_allowance", 0.01)),
    )

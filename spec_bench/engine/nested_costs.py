"""What a nested drafter's wider budgets cost over its narrowest one: what the drafter fills
of them, estimated from the steps where it filled the narrower tree.

A nested drafter's tree under a budget is the first nodes of its tree under any larger one,
so a step whose proposal left a budget unfilled shows what every wider budget would have
proposed: the same nodes, at the same price. Only where the drafter filled a budget is what
the next wider one adds unknown until a step verifies it (or drafts it beside, unverified).
So a wider budget's cost is the narrowest's mean plus, per ladder step, the chance that the
narrower tree was filled times what the wider one added in the steps where it was:

    cost(l_k) = cost(l_0) + sum over j <= k of P(filled l_(j-1)) * E[added at l_j | filled l_(j-1)]

where ``P(filled l_j) = P(filled l_0) * prod P(filled l_i | filled l_(i-1))``, each factor a
running mean over the steps that measured it.

A plain mean of each budget's own observations, starting from the curve's price of a full
tree (so that a stretch where PLD found no match does not make 15 nodes look free), counted
every step at 3 nodes as saying nothing of 4 nodes: the suffix tree, proposing one node in
most steps and 4 in about 1 step in 100, had 4 nodes priced 2-3% above 3 for whole answers
(the prior, thinned only by 8 shadow steps) and verified 3 in every step of ``make bench``,
where a fixed 4 or 8 reached MAT 1.26 against 1.25 at the same forward time.

Every factor starts at the full tree (filled with certainty, the curve's price of the added
nodes), counted as ``prior_steps`` steps: before any step, each budget costs the curve's
price of a full tree, as before.
"""

from __future__ import annotations

from collections.abc import Callable


class FillSplitCosts:
    """Per ladder budget: the rate at which the drafter fills it (given it filled the next
    narrower one), and above the narrowest what it added to the forward's time after the
    narrower tree was filled."""

    def __init__(
        self, ladder: list[int], latency: Callable[[int], float], memory: int, prior_steps: float = 4.0
    ) -> None:
        self.ladder = list(ladder)
        self.latency = latency  # seconds of a forward of that many tokens
        self.memory = memory
        self.prior_steps = prior_steps
        self.reset()

    def reset(self) -> None:
        self.fill_rate = dict.fromkeys(self.ladder, 1.0)
        # Steps that measured each budget after the next narrower one was filled (every step
        # for the narrowest).
        self.seen = dict.fromkeys(self.ladder, 0)
        pairs = list(zip(self.ladder, self.ladder[1:]))
        self.after_fill = {wide: self._price(wide) - self._price(narrow) for narrow, wide in pairs}

    def _price(self, nodes: int) -> float:
        return self.latency(1 + nodes)

    def _weight(self, seen: int) -> float:
        return 1.0 / min(seen + self.prior_steps, self.memory)

    def record(self, proposed: int, measured: int) -> None:
        """One step: the nodes the drafter proposed under ``measured``, the widest ladder
        budget the step measured (verified, or drafted beside the step)."""
        narrow = None
        for budget in self.ladder:
            if budget > measured:
                break
            self.seen[budget] += 1
            weight = self._weight(self.seen[budget])
            if narrow is not None:  # what ``budget`` added once ``narrow`` was filled
                added = self._price(min(budget, proposed)) - self._price(narrow)
                self.after_fill[budget] += weight * (added - self.after_fill[budget])
            filled = proposed >= budget
            self.fill_rate[budget] += weight * (filled - self.fill_rate[budget])
            if not filled:
                break  # the wider budgets proposed the same nodes: nothing conditional to learn
            narrow = budget

    def added(self, budget: int) -> float:
        """Seconds a step of ``budget`` is estimated to cost over the narrowest ladder budget."""
        total, filled = 0.0, 1.0
        for narrow, wide in zip(self.ladder, self.ladder[1:]):
            if wide > budget:
                break
            filled *= self.fill_rate[narrow]
            total += filled * self.after_fill[wide]
        return total

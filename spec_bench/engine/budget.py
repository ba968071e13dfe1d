"""How many tokens each step verifies.

The engine owns this choice (the drafter owns what fills it). ``FixedBudget`` is the
``engine.budget=<int>`` setting; the cost-aware policy lives in ``spec_bench.engine.cost``.
"""

from __future__ import annotations

from typing import Protocol


class BudgetPolicy(Protocol):
    def reset(self) -> None:
        """A new request: back to the policy's initial state (its priors, not what earlier
        requests taught it), so no request's budgets depend on the ones before it."""

    def choose(self) -> int:
        """Tokens (drafts and branch nodes) the next step may verify besides the root."""

    def record(
        self, budget: int, proposed: int, accepted_drafts: int, accepted_nodes: list[int] | None = None
    ) -> None:
        """Learn from a finished step: its budget, nodes proposed, draft tokens accepted, and
        which nodes (trie indices, root to leaf) were accepted."""


class FixedBudget:
    def __init__(self, budget: int) -> None:
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        self.budget = budget

    def reset(self) -> None:
        pass

    def choose(self) -> int:
        return self.budget

    def record(
        self, budget: int, proposed: int, accepted_drafts: int, accepted_nodes: list[int] | None = None
    ) -> None:
        pass

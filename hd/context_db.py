"""W, the context-dependent database: n-grams of this request, most recent first.

Keyed by one token; each key holds at most ``capacity`` continuations of LEVEL-1 tokens in
most-recently-used order (Lookahead's pool, whose eviction and refresh rules it shares).
Filled from the prompt's n-grams at the start of a request, then every step from the
n-grams the Jacobi window harvests and from every n-gram that ends in the step's accepted
tokens. The official code's update slice ``input_ids[-LEVEL-k:-k]`` is empty for ``k=0``,
so the newest n-gram of each step never reached W; here every one of them does.
"""

from __future__ import annotations

from baselines.lookahead import NGramPool


class ContextDB:
    def __init__(self, level: int, capacity: int) -> None:
        if level < 2:
            raise ValueError(f"level must be >= 2, got {level}")
        self.level = level
        self.pool = NGramPool(capacity)

    def __len__(self) -> int:
        return len(self.pool)

    def add(self, ngram: list[int]) -> None:
        if len(ngram) == self.level:
            self.pool.add(ngram)

    def add_sequence(self, tokens: list[int], new: int | None = None) -> None:
        """Add the n-grams of ``tokens`` that end in its last ``new`` tokens (all when
        None), oldest first so the newest ends up most recent."""
        first_end = self.level - 1 if new is None else max(self.level - 1, len(tokens) - new)
        for end in range(first_end, len(tokens)):
            self.pool.add(tokens[end - self.level + 1 : end + 1])

    def lookup(self, token: int, limit: int) -> list[list[int]]:
        """Up to ``limit`` continuations of ``token``, most recently used first."""
        return self.pool.lookup(token, limit)

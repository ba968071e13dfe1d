"""L, the statistics-dependent database: REST's retrieval datastore, queried with the last
``previous_tokens`` tokens (then fewer, down to one, when those never occur).

Retrieved continuations are cut to the draft length, and at the first position past the
end of the indexed text, never padded: the official code padded short candidates with
random, unseeded vocabulary ids, which wastes verification slots and makes runs
irreproducible. Identical candidates are merged and ranked by how often they were retrieved.

With ``drafter.datastore.backend=draftretriever`` the PyPI package's index answers the last
``previous_tokens`` tokens (at least two: it searches from a token pair) with its own
drafts, cut to the draft length and de-duplicated the same way.
"""

from __future__ import annotations

from collections import Counter

from spec_bench.datastore import PackageIndex, SuffixIndex
from spec_bench.datastore.package import MIN_QUERY


class StatisticsDB:
    def __init__(
        self,
        index: SuffixIndex | PackageIndex,
        previous_tokens: int = 2,
        draft_length: int = 4,
        max_retrieved: int = 5000,
        max_candidates: int = 64,
    ) -> None:
        if previous_tokens < 1 or draft_length < 1:
            raise ValueError("previous_tokens and draft_length must be >= 1")
        self.index = index
        self.previous_tokens = previous_tokens
        self.draft_length = draft_length
        self.max_retrieved = max_retrieved
        self.max_candidates = max_candidates

    def start_request(self) -> None:
        self.index.start_request()

    def lookup(self, context: list[int], limit: int) -> list[list[int]]:
        """Up to ``limit`` distinct continuations of the context, most frequent first
        (ties: longer first, as they draft more, then smaller token ids)."""
        limit = min(limit, self.max_candidates)
        if limit <= 0:
            return []
        if isinstance(self.index, PackageIndex):
            query = context[-max(self.previous_tokens, MIN_QUERY) :]
            return self.index.drafts(query, limit, self.draft_length)
        for length in range(min(self.previous_tokens, len(context)), 0, -1):
            rows = self.index.continuations(context[-length:], self.draft_length, self.max_retrieved)
            if len(rows):
                break
        else:
            return []
        counts = Counter(tuple(_until_end(row)) for row in rows.tolist())
        counts.pop((), None)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], -len(item[0]), item[0]))
        return [list(candidate) for candidate, _ in ranked[:limit]]


def _until_end(row: list[int]):
    for token in row:
        if token < 0:
            return
        yield token

"""An n-gram pool keyed by one token: Lookahead's ``token_map`` and HD's context database W.

Each key holds at most ``capacity`` continuations of LEVEL-1 tokens. Adding one that is
already there moves it to the most recent end (lade's ``remove`` + ``append``); adding one
to a full key evicts the least recently added. Lookahead (lade) and the official HD code
both draft a key's continuations oldest first; ``newest_first`` drafts the freshest first
(our fix: with a larger cap than the drafts taken, oldest first drafts the stalest).

Each continuation remembers the fewest window columns that put it there (``columns``: 0 for
one read from the prompt or the accepted text, ``c + 1`` for one harvested from column
``c``): a narrower window's columns iterate exactly as the wider one's first columns (a
column sees only the columns before it), so the pool a narrower window would have filled
is, roughly, the continuations needing no more than its columns. ``auto`` reads this to
credit a wider window with the drafts it makes possible in later steps.
"""

from __future__ import annotations

from spec_bench.drafting.source import Source
from spec_bench.engine.proposal import StepResult

# How a pool learns from the accepted tokens of a step.
ACCEPTED_NGRAMS = {
    "none": "never (Lookahead: its pool is fed by the Jacobi window only)",
    "official": "as the official HD code: the n-grams ending at each accepted draft token but "
    "the first, newest first (its slice input_ids[-LEVEL-h:-h] is empty for h=0, so the "
    "n-grams ending at the first accepted draft and at the bonus token never arrive)",
    "all": "every n-gram ending in the step's tokens, oldest first (so the newest is most recent)",
}


class NGramPool:
    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.entries: dict[int, list[tuple[int, ...]]] = {}
        self.origins: dict[tuple[int, tuple[int, ...]], int] = {}

    def __len__(self) -> int:
        return sum(len(continuations) for continuations in self.entries.values())

    def add(self, ngram: list[int], columns: int = 0) -> None:
        """Add ``ngram`` (key, continuation) that ``columns`` window columns put here (0:
        none did)."""
        if len(ngram) < 2 or self.capacity == 0:
            return
        key, continuation = ngram[0], tuple(ngram[1:])
        continuations = self.entries.setdefault(key, [])
        if continuation in continuations:
            continuations.remove(continuation)
            columns = min(columns, self.origins[(key, continuation)])
        elif len(continuations) >= self.capacity:
            del self.origins[(key, continuations.pop(0))]
        continuations.append(continuation)
        self.origins[(key, continuation)] = columns

    def columns(self, token: int, continuation: list[int]) -> int:
        """The fewest window columns that put ``continuation`` of ``token`` here (0 if none
        did, or it is not here)."""
        return self.origins.get((token, tuple(continuation)), 0)

    def lookup(self, token: int, limit: int, newest_first: bool) -> list[list[int]]:
        """Up to ``limit`` continuations of ``token``: the oldest or the newest first."""
        if limit <= 0:
            return []
        continuations = self.entries.get(token, [])
        chosen = reversed(continuations[-limit:]) if newest_first else continuations[:limit]
        return [list(continuation) for continuation in chosen]


class PoolSource(Source):
    """Drafts the pool's continuations of the last token.

    Fed every step with the n-grams the drafter's Jacobi window harvests; with
    ``from_prompt`` also with every LEVEL-gram of the prompt at the start of a request (HD's
    W), and with the accepted tokens' n-grams as ``accepted_ngrams`` says (see
    ``ACCEPTED_NGRAMS``). The pool starts empty for every request.
    """

    def __init__(
        self, *, level: int, capacity: int, from_prompt: bool, accepted_ngrams: str, newest_first: bool
    ) -> None:
        if level < 2:
            raise ValueError(f"level must be >= 2, got {level}")
        if accepted_ngrams not in ACCEPTED_NGRAMS:
            raise ValueError(
                f"accepted_ngrams must be one of {', '.join(ACCEPTED_NGRAMS)}, got {accepted_ngrams}"
            )
        self.level = level
        self.capacity = capacity
        self.from_prompt = from_prompt
        self.accepted_ngrams = accepted_ngrams
        self.newest_first = newest_first
        self.pool = NGramPool(capacity)
        self.history: list[int] = []

    @property
    def needs_window(self) -> bool:
        """Whether the Jacobi window is all that fills this pool (Lookahead's; HD's W also
        reads the prompt)."""
        return not self.from_prompt and self.accepted_ngrams == "none"

    def __len__(self) -> int:
        return len(self.pool)

    def reset(self, prompt_ids: list[int]) -> None:
        self.pool = NGramPool(self.capacity)
        self.history = list(prompt_ids)
        if self.from_prompt:
            self._add_ending_in(range(self.level - 1, len(self.history)))

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        return self.pool.lookup(context[-1], self.capacity, self.newest_first)

    def columns_needed(self, context: list[int], path: list[int]) -> int:
        return self.pool.columns(context[-1], path)

    def observe(self, step: StepResult, harvested: list[list[int]]) -> None:
        for column, ngram in enumerate(harvested):  # one n-gram per column, in column order
            if len(ngram) == self.level:
                self.pool.add(ngram, column + 1)
        # Accepted n-grams after the window's: verified text is the freshest evidence.
        self.history.extend(step.tokens)
        end = len(self.history)
        if self.accepted_ngrams == "all":
            self._add_ending_in(range(max(self.level - 1, end - len(step.tokens)), end))
        elif self.accepted_ngrams == "official":
            accepted_drafts = step.n_accepted_drafts
            self._add_ending_in(range(end - 2, end - 1 - accepted_drafts, -1))

    def _add_ending_in(self, ends) -> None:
        """Add the LEVEL-grams ending at each index of ``ends``, in that order."""
        for last in ends:
            if last >= self.level - 1:
                self.pool.add(self.history[last - self.level + 1 : last + 1])

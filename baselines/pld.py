"""Prompt lookup decoding (Saxena, 2023) as a draft source.

``match: earliest_full`` is Spec-Bench's PLD (``model/pld/pld.py``,
``find_candidate_pred_tokens``): for n-gram sizes ``max_ngram`` down to 1, the context's last
n tokens are searched in the whole context (prompt plus output), and the first occurrence,
scanning from the start, whose continuation has all ``num_pred_tokens`` tokens gives the
draft: one chain. With no such match, Spec-Bench verifies the token id 100 as a one-token
draft (``empty_draft_token``; ``null`` drafts nothing).

``match: recent`` is our tree variant (``pld_tree``): for the longest suffix n-gram that
occurred before, up to ``max_matches`` distinct continuations, most recent occurrence first
and shorter than ``num_pred_tokens`` where the context ends, are merged into the trie when
the budget holds more than one.

Lookups use an n-gram index updated as tokens arrive, so drafting costs O(new tokens) per
step rather than a scan of the whole context.
"""

from __future__ import annotations

from collections import defaultdict

from spec_bench.drafting.source import Source
from spec_bench.engine.proposal import StepResult

MATCHES = ("earliest_full", "recent")


class NGramIndex:
    """Positions following every n-gram (n = 1..max_ngram) of a growing token list, in
    increasing order."""

    def __init__(self, max_ngram: int) -> None:
        self.max_ngram = max_ngram
        self.tokens: list[int] = []
        self.next_positions: dict[tuple[int, ...], list[int]] = defaultdict(list)

    def extend(self, tokens: list[int]) -> None:
        for token in tokens:
            self.tokens.append(token)
            end = len(self.tokens)
            # Register the n-grams ending just before the new token: their continuation
            # (the new token) now exists.
            for n in range(1, self.max_ngram + 1):
                if end - 1 - n < 0:
                    break
                self.next_positions[tuple(self.tokens[end - 1 - n : end - 1])].append(end - 1)

    def earliest_full(self, length: int) -> list[int]:
        """Spec-Bench's rule: the continuation after the earliest occurrence of the longest
        suffix n-gram whose continuation has ``length`` tokens and which ends before the
        suffix itself begins (an earlier occurrence has more room after it, so only the first
        can qualify), or nothing."""
        tokens = self.tokens
        for n in range(min(self.max_ngram, len(tokens)), 0, -1):
            starts = self.next_positions.get(tuple(tokens[-n:]))
            if starts and starts[0] + length <= len(tokens) and starts[0] < len(tokens) - n:
                return tokens[starts[0] : starts[0] + length]
        return []

    def recent(self, length: int, max_matches: int) -> list[list[int]]:
        """Continuations of the longest suffix n-gram that occurred before, most recent first."""
        tokens = self.tokens
        for n in range(min(self.max_ngram, len(tokens)), 0, -1):
            starts = self.next_positions.get(tuple(tokens[-n:]))
            if not starts:
                continue
            found: list[list[int]] = []
            for start in reversed(starts):
                continuation = tokens[start : start + length]
                if continuation and continuation not in found:
                    found.append(continuation)
                    if len(found) == max_matches:
                        break
            return found
        return []


class PromptLookup(Source):
    def __init__(
        self,
        *,
        max_ngram: int,
        num_pred_tokens: int,
        match: str,
        max_matches: int,
        empty_draft_token: int | None,
    ) -> None:
        if match not in MATCHES:
            raise ValueError(f"match must be one of {', '.join(MATCHES)}, got {match}")
        if max_ngram < 1 or num_pred_tokens < 1 or max_matches < 1:
            raise ValueError("max_ngram, num_pred_tokens and max_matches must be >= 1")
        self.max_ngram = max_ngram
        self.num_pred_tokens = num_pred_tokens
        self.match = match
        self.max_matches = max_matches
        self.empty_draft_token = empty_draft_token
        self.index = NGramIndex(max_ngram)

    def reset(self, prompt_ids: list[int]) -> None:
        self.index = NGramIndex(self.max_ngram)
        self.index.extend(prompt_ids)

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        if self.match == "earliest_full":
            drafts = [draft] if (draft := self.index.earliest_full(self.num_pred_tokens)) else []
        else:
            # More matches only when the room holds more than one full draft.
            matches = max(1, min(self.max_matches, room // self.num_pred_tokens))
            drafts = self.index.recent(self.num_pred_tokens, matches)
        if not drafts and self.empty_draft_token is not None:
            return [[self.empty_draft_token]]
        return drafts

    def observe(self, step: StepResult, harvested: list[list[int]]) -> None:
        self.index.extend(step.tokens)

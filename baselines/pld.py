"""Prompt lookup decoding (Saxena, 2023), as Spec-Bench runs it.

The longest suffix of the context (``max_ngram`` tokens down to 1) is looked up earlier in
the prompt plus output; the ``num_pred_tokens`` tokens that followed the match are the
draft. Unlike the single-match original, up to ``max_matches`` distinct continuations
(most recent match first) are merged into the trie when the step's budget has room, so a
larger budget buys more chances instead of longer tails.

Lookups use an n-gram index updated incrementally as tokens arrive, so drafting costs
O(new tokens) per step rather than a scan of the whole context.
"""

from __future__ import annotations

from collections import defaultdict

from spec_bench.engine.proposal import Proposal, StepResult


class NGramIndex:
    """Positions following every n-gram (n = 1..max_ngram) of a growing token list."""

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

    def continuations(self, length: int, max_matches: int) -> list[list[int]]:
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


class PromptLookupDrafter:
    name = "pld"

    def __init__(self, max_ngram: int = 3, num_pred_tokens: int = 10, max_matches: int = 4) -> None:
        self.max_ngram = max_ngram
        self.num_pred_tokens = num_pred_tokens
        self.max_matches = max_matches
        self.index = NGramIndex(max_ngram)

    def reset(self, prompt_ids: list[int]) -> None:
        self.index = NGramIndex(self.max_ngram)
        self.index.extend(prompt_ids)

    def propose(self, context: list[int], budget: int) -> Proposal:
        proposal = Proposal()
        if budget <= 0:
            return proposal
        # More matches only when the budget can hold more than one full draft.
        matches = max(1, min(self.max_matches, budget // self.num_pred_tokens))
        for continuation in self.index.continuations(self.num_pred_tokens, matches):
            proposal.add_path(continuation, self.name, budget)
        return proposal

    def observe(self, step: StepResult) -> None:
        self.index.extend(step.tokens)


def build(cfg, target) -> PromptLookupDrafter:
    settings = cfg.drafter
    return PromptLookupDrafter(
        max_ngram=int(settings.max_ngram),
        num_pred_tokens=int(settings.num_pred_tokens),
        max_matches=int(settings.get("max_matches", 1)),
    )

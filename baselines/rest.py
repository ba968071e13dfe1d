"""REST: retrieval-based speculative decoding (He, Zhong, Cai, Lee, He; NAACL 2024).

Each step, the longest suffix of the context (``max_suffix`` tokens down to ``min_suffix``)
that occurs in the datastore is looked up; the ``draft_length`` tokens after up to
``max_retrieved`` of its occurrences are the retrieved continuations. Their prefixes are
counted, and the most frequent ones (at most ``max_nodes``, and never more than the step's
budget) form the draft trie: a prefix is at least as frequent as any of its extensions, so
the most frequent prefixes, shorter first on ties, are always a trie.

Defaults are REST's (and Spec-Bench's): suffixes of 16 down to 2 tokens, 64 draft nodes,
continuations of 10 tokens, up to 5,000 occurrences.

With ``drafter.datastore.backend=draftretriever`` the PyPI package's index answers instead
(its own search over token pairs, see ``spec_bench.datastore.package``): it is queried
with the last ``max_suffix`` tokens and its drafts, cut to ``draft_length``, fill the trie.
"""

from __future__ import annotations

import numpy as np

from spec_bench.datastore import PackageIndex, SuffixIndex
from spec_bench.engine.proposal import Proposal, StepResult


def longest_matching_suffix(index: SuffixIndex, context: list[int], longest: int, shortest: int) -> int:
    """Length of the longest suffix of ``context`` in ``[shortest, longest]`` that occurs in
    ``index``, or 0. Occurrence is monotone in the length (a longer suffix occurring implies
    every shorter one does), so this binary search finds what REST's scan from long to
    short finds, in a handful of lookups instead of up to 15."""
    longest = min(longest, len(context))
    if longest < shortest or index.count(context[-shortest:]) == 0:
        return 0
    lo, hi = shortest, longest  # lo occurs; find the largest length that does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if index.count(context[-mid:]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def most_frequent_prefixes(continuations: np.ndarray, limit: int) -> list[list[int]]:
    """The ``limit`` most frequent prefixes of the rows of ``continuations`` (-1 pads),
    ties broken by shorter first, then smaller token ids; returned parents before children."""
    if limit <= 0 or continuations.size == 0:
        return []
    rows = continuations.shape[0]
    parent_of_row = np.full(rows, -1, dtype=np.int64)
    alive = np.ones(rows, dtype=bool)
    tokens, parents, counts, depths = [], [], [], []
    next_id = 0
    for depth in range(continuations.shape[1]):
        column = continuations[:, depth]
        alive &= column >= 0
        if not alive.any():
            break
        # One key per (parent node, token): the trie's children at this depth.
        keys = (parent_of_row[alive] + 1) << 32 | column[alive]
        unique_keys, inverse, key_counts = np.unique(keys, return_inverse=True, return_counts=True)
        tokens.append(unique_keys & 0xFFFFFFFF)
        parents.append((unique_keys >> 32) - 1)
        counts.append(key_counts)
        depths.append(np.full(len(unique_keys), depth))
        parent_of_row[alive] = next_id + inverse
        next_id += len(unique_keys)
    token_of = np.concatenate(tokens)
    parent_of = np.concatenate(parents)
    count_of = np.concatenate(counts)
    depth_of = np.concatenate(depths)
    chosen = np.lexsort((token_of, depth_of, -count_of))[:limit]
    paths: dict[int, list[int]] = {}
    for node in sorted(chosen.tolist(), key=lambda n: (depth_of[n], -count_of[n], token_of[n])):
        parent = int(parent_of[node])
        paths[node] = (paths[parent] if parent >= 0 else []) + [int(token_of[node])]
    return list(paths.values())


class RestDrafter:
    name = "rest"

    def __init__(
        self,
        index: SuffixIndex | PackageIndex,
        max_suffix: int = 16,
        min_suffix: int = 2,
        draft_length: int = 10,
        max_retrieved: int = 5000,
        max_nodes: int = 64,
    ) -> None:
        if not 1 <= min_suffix <= max_suffix:
            raise ValueError(f"need 1 <= min_suffix <= max_suffix, got {min_suffix}, {max_suffix}")
        self.index = index
        self.max_suffix = max_suffix
        self.min_suffix = min_suffix
        self.draft_length = draft_length
        self.max_retrieved = max_retrieved
        self.max_nodes = max_nodes

    def reset(self, prompt_ids: list[int]) -> None:
        self.index.start_request()

    def propose(self, context: list[int], budget: int) -> Proposal:
        proposal = Proposal()
        limit = min(budget, self.max_nodes)
        if limit <= 0:
            return proposal
        for path in self.retrieve(context, limit):
            proposal.add_path(path, self.name, budget)
        return proposal

    def retrieve(self, context: list[int], limit: int) -> list[list[int]]:
        """Draft paths for the trie, parents before children."""
        if isinstance(self.index, PackageIndex):
            return self.index.drafts(context[-self.max_suffix :], limit, self.draft_length)
        length = longest_matching_suffix(self.index, context, self.max_suffix, self.min_suffix)
        if length == 0:
            return []
        continuations = self.index.continuations(context[-length:], self.draft_length, self.max_retrieved)
        return most_frequent_prefixes(continuations, limit)

    def observe(self, step: StepResult) -> None:
        pass


def build(cfg, target) -> RestDrafter:
    from spec_bench.datastore import datastore_for

    settings = cfg.drafter
    return RestDrafter(
        datastore_for(cfg, target.tokenizer),
        max_suffix=int(settings.max_suffix),
        min_suffix=int(settings.min_suffix),
        draft_length=int(settings.draft_length),
        max_retrieved=int(settings.max_retrieved),
        max_nodes=int(settings.max_nodes),
    )

"""Suffix-tree drafting, SuffixDecoding's design (Oliaro et al., arXiv 2411.04975; the
ArcticInference implementation), as a draft source.

Two trees of suffixes, each cut to ``max_depth`` tokens, with occurrence counts: one per
request over its prompt and output, and one global tree over earlier answers (responses
only, the current one included as it grows; the oldest evicted past
``max_cached_responses``), kept across requests as SuffixDecoding keeps it. For every suffix
of the context that occurs in a tree (1 token up to ``max_depth``), a draft is grown from
that match: a child's probability is its count over its parent's, multiplied along the path;
``tree: true`` grows best-first (the most probable node next, children below
``min_token_prob`` pruned), ``tree: false`` follows the most frequent child (one chain,
vLLM's default). A draft holds at most ``max_spec_factor x match length + max_spec_offset``
tokens (and the room the step leaves). Its score is the sum of its probabilities; the best
score over all match lengths and both trees wins (ties: the longer match, then the request's
tree). With ``min_match``, matches shorter than that draft nothing, so a hierarchy can fall
back on another source (SAM-Decoding's rule, with Token Recycling as the fallback).

Our trees are plain tries (one token a node) rather than path-compressed; the counts, and so
the drafts, are the same. ``max_depth`` is 32 here (SuffixDecoding: 64) to keep the Python
tries small; a match is rarely longer.
"""

from __future__ import annotations

import heapq
from collections import deque

from spec_bench.drafting.source import Source
from spec_bench.engine.proposal import StepResult


class _Node:
    __slots__ = ("count", "children")

    def __init__(self) -> None:
        self.count = 0
        self.children: dict[int, _Node] = {}


class SuffixTrie:
    """Every suffix (up to ``max_depth`` tokens) of the sequences appended, with counts: a
    node's count is how often its string occurs, an occurrence at a sequence's end included."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.root = _Node()
        self._open: dict[int, list[tuple[_Node, int]]] = {}  # per sequence: suffixes still growing

    def append(self, sequence: int, tokens: list[int]) -> None:
        growing = self._open.setdefault(sequence, [])
        for token in tokens:
            self.root.count += 1
            extended = []
            for node, depth in [(self.root, 0), *growing]:
                child = node.children.get(token)
                if child is None:
                    child = node.children[token] = _Node()
                child.count += 1
                if depth + 1 < self.max_depth:
                    extended.append((child, depth + 1))
            growing[:] = extended

    def close(self, sequence: int) -> None:
        """Forget that ``sequence`` may still grow."""
        self._open.pop(sequence, None)

    def remove(self, tokens: list[int]) -> None:
        """Take one sequence's suffixes out again (its occurrences only)."""
        for start in range(len(tokens)):
            self.root.count -= 1
            node = self.root
            for token in tokens[start : start + self.max_depth]:
                child = node.children[token]
                child.count -= 1
                if child.count == 0:
                    del node.children[token]
                    break
                node = child

    def find(self, query: list[int]) -> _Node | None:
        node = self.root
        for token in query:
            node = node.children.get(token)
            if node is None:
                return None
        return node


def grow(match: _Node, max_tokens: int, min_prob: float, tree: bool) -> tuple[list[list[int]], float]:
    """Draft paths below ``match`` (parents first) and their summed probabilities."""
    paths: list[list[int]] = []
    score = 0.0
    heap: list[tuple[float, int, _Node, list[int]]] = []
    tiebreak = 0

    def push_children(node: _Node, path: list[int], prob: float) -> None:
        nonlocal tiebreak
        if node.count == 0:
            return
        for token, child in sorted(node.children.items(), key=lambda item: (-item[1].count, item[0])):
            child_prob = prob * child.count / node.count
            if child_prob < min_prob:
                break  # children come most frequent first: the rest are smaller
            tiebreak += 1
            heapq.heappush(heap, (-child_prob, tiebreak, child, [*path, token]))
            if not tree:
                break  # a chain: the most frequent child only

    push_children(match, [], 1.0)
    while heap and len(paths) < max_tokens:
        negative, _, node, path = heapq.heappop(heap)
        paths.append(path)
        score -= negative
        if not tree:
            heap.clear()
        push_children(node, path, -negative)
    return paths, score


class SuffixSource(Source):
    def __init__(
        self,
        *,
        max_depth: int,
        max_spec_factor: float,
        max_spec_offset: float,
        min_token_prob: float,
        tree: bool,
        max_cached_responses: int,
        min_match: int,
    ) -> None:
        self.max_depth = max_depth
        self.max_spec_factor = max_spec_factor
        self.max_spec_offset = max_spec_offset
        self.min_token_prob = min_token_prob
        self.tree = tree
        self.max_cached_responses = max_cached_responses
        self.min_match = min_match
        self.local = SuffixTrie(max_depth)
        self.global_tree = SuffixTrie(max_depth)
        self.responses: deque[tuple[int, list[int]]] = deque()  # (id, tokens) in the global tree
        self.request = 0

    def reset(self, prompt_ids: list[int]) -> None:
        self.local = SuffixTrie(self.max_depth)
        self.local.append(0, prompt_ids)
        self.request += 1
        self.responses.append((self.request, []))
        while len(self.responses) > self.max_cached_responses:
            evicted, tokens = self.responses.popleft()
            self.global_tree.remove(tokens)
            self.global_tree.close(evicted)

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        local_paths, local_score = self.speculate(self.local, context, room)
        global_paths, global_score = self.speculate(self.global_tree, context, room)
        return local_paths if local_score >= global_score else global_paths

    def speculate(self, trie: SuffixTrie, context: list[int], room: int) -> tuple[list[list[int]], float]:
        """The best-scoring draft over every match length (ties: the longer match)."""
        best_paths, best_score = [], 0.0
        for match in range(self.min_match, min(len(context), self.max_depth) + 1):
            node = trie.find(context[-match:])
            if node is None:
                break  # a longer suffix cannot occur either
            limit = min(room, int(match * self.max_spec_factor + self.max_spec_offset + 1e-6))
            if limit <= 0:
                continue
            paths, score = grow(node, limit, self.min_token_prob, self.tree)
            if paths and score >= best_score:
                best_paths, best_score = paths, score
        return best_paths, best_score

    def observe(self, step: StepResult, harvested: list[list[int]]) -> None:
        self.local.append(0, step.tokens)
        request, tokens = self.responses[-1]
        tokens.extend(step.tokens)
        self.global_tree.append(request, step.tokens)

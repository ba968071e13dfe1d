"""What REST's DraftRetriever ``search`` does with retrieved continuations, on either index.

Given the continuations that follow a query's occurrences (rows of up to ``length`` tokens,
-1 where the indexed text ends), every prefix of every row is a trie node counted once per
row. REST keeps the ``choices`` most frequent nodes, then (``cut_to_choices`` in its
``lib.rs``) drops the nodes with the most distinct tokens until the kept nodes' distinct
tokens sum to at most ``choices``, and closes the set under prefixes. So a draft tree has
far fewer than ``choices`` nodes: one chain of 10 distinct tokens already costs 55.

REST breaks ties with Rust's randomised hash order, so its trees vary from run to run;
here ties go to the shorter node, then the smaller token ids (at the top-``choices``
boundary), and the cut drops, among nodes with as many distinct tokens, the less frequent
first. Results are ``(path, count)`` pairs ordered by count, then depth, then tokens: a
node always comes after its parent (a parent is at least as frequent and shallower).
"""

from __future__ import annotations

import numpy as np


def prefix_trie(continuations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every prefix of the rows as a trie node: (token, parent or -1, count, depth) arrays."""
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
    if not tokens:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, empty
    return tuple(np.concatenate(part) for part in (tokens, parents, counts, depths))


def most_frequent_nodes(continuations: np.ndarray, limit: int) -> list[tuple[list[int], int]]:
    """The ``limit`` most frequent prefixes (ties: shorter, then smaller token ids), parents first."""
    if limit <= 0 or continuations.size == 0:
        return []
    token_of, parent_of, count_of, depth_of = prefix_trie(continuations)
    chosen = np.lexsort((token_of, depth_of, -count_of))[:limit]
    paths = _paths(chosen.tolist(), token_of, parent_of)
    return _ranked([(paths[node], int(count_of[node])) for node in chosen.tolist()])


def draftretriever_search(continuations: np.ndarray, choices: int) -> list[tuple[list[int], int]]:
    """REST's search: top-``choices`` prefixes, ``cut_to_choices``, prefix closure."""
    if choices <= 0 or continuations.size == 0:
        return []
    token_of, parent_of, count_of, depth_of = prefix_trie(continuations)
    ranked = np.lexsort((token_of, depth_of, -count_of))[:choices].tolist()
    paths = _paths(ranked, token_of, parent_of)
    # Stable sort by distinct tokens, most first; among equals the less frequent comes first.
    by_distinct = sorted(reversed(ranked), key=lambda node: -len(set(paths[node])))
    total = sum(len(set(paths[node])) for node in ranked)
    removed = set()
    for node in by_distinct:
        if total <= choices:
            break
        total -= len(set(paths[node]))
        removed.add(node)
    kept = [node for node in ranked if node not in removed]
    closure = set()
    for node in kept:  # every ancestor of a kept node is a node of the tree
        while node >= 0 and node not in closure:
            closure.add(node)
            node = int(parent_of[node])
    paths = _paths(sorted(closure), token_of, parent_of)
    return _ranked([(paths[node], int(count_of[node])) for node in closure])


def _paths(nodes: list[int], token_of: np.ndarray, parent_of: np.ndarray) -> dict[int, list[int]]:
    paths: dict[int, list[int]] = {}
    for node in nodes:
        path, current = [], node
        while current >= 0:
            path.append(int(token_of[current]))
            current = int(parent_of[current])
        paths[node] = path[::-1]
    return paths


def _ranked(nodes: list[tuple[list[int], int]]) -> list[tuple[list[int], int]]:
    return sorted(nodes, key=lambda item: (-item[1], len(item[0]), item[0]))

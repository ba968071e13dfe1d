"""Token Recycling (Luo et al., ACL 2025, arXiv 2408.08696) as a draft source.

As Spec-Bench runs it (``evaluation/inference_recycling.py``, ``model/recycling``): an
adjacency matrix of ``vocab x k`` token ids holds, for every token, the ``k`` tokens the
target ranked highest after it the last time that token was verified. Every step rewrites
the row of each verified node's token (the root and every draft node, accepted or not) with
the target's top-k there; the drafter asks the engine for that top-k (``topk``), so AR pays
nothing for it. Drafts fill a static tree template breadth-first: the template lists each
node as the ranks of its path (``[0, 2]``: the top child's third-ranked child), and a node's
token is ``matrix[token of its parent][rank]``, the root being the last accepted token. A
budget below the template keeps its first nodes, which come in breadth-first order.

The matrix starts as zeros once per run and is kept across requests and turns, as TR does:
so a question's drafts depend on the questions (and the warm-up) before it, and a run's
numbers depend on the order of its questions (the report says so). A token never verified
has an all-zero row: its children are token 0, as in TR (identical siblings are merged by
the shared verifier, so they cost one node here, not ``k``).
"""

from __future__ import annotations

import numpy as np

from spec_bench.drafting.source import Resources, Source
from spec_bench.engine.proposal import StepResult


class TokenRecycling(Source):
    def __init__(self, *, topk: int, template: list[list[int]], vocab_size: int = 0) -> None:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        ranks = [tuple(int(rank) for rank in path) for path in template]
        known = {()}
        for path in ranks:
            if not path or path[:-1] not in known or max(path) >= topk or path in known:
                problem = f"needs its parent before it and ranks below {topk}"
                raise ValueError(f"template node {list(path)} {problem}")
            known.add(path)
        self.topk = topk
        self.template = ranks
        # Breadth-first: each node's parent is an earlier node (or the root, -1).
        index_of = {path: i for i, path in enumerate(ranks)}
        self.parent = [index_of.get(path[:-1], -1) for path in ranks]
        self.rank = [path[-1] for path in ranks]
        # As many rows learned a step as the template's first level has nodes (TR's k children
        # of the root). What TR learns a step is the rows of the tokens it verified, the
        # root's included, so a budget of k - 1 nodes trains k rows, and a smaller one fewer:
        # its drafts get worse in later steps where the automatic budget's scoring of a step
        # cannot see it, so such budgets are not candidates (``SourceDrafter.min_budget``), or
        # with a window, only when clearly faster (``auto_budget.learning_floor``). On
        # ``make bench``'s prompts TR at a fixed 7 reached MAT 1.250 as at 8, 1.04x as fast
        # (9 tokens a forward cost a second pass of our bf16 kernel, 8 do not).
        self.min_room = max(1, sum(len(path) == 1 for path in ranks) - 1)
        self.matrix = np.zeros((max(vocab_size, 1), topk), dtype=np.int64)

    def attach(self, resources: Resources) -> None:
        vocab = int(resources.target.model.config.vocab_size)
        self.matrix = np.zeros((vocab, self.topk), dtype=np.int64)  # once per run, as TR

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        """One path per template node, in template order, up to ``room`` nodes."""
        count = min(room, len(self.template))
        tokens: list[int] = []
        paths: list[list[int]] = []
        for node in range(count):
            parent = self.parent[node]
            parent_token = context[-1] if parent < 0 else tokens[parent]
            tokens.append(int(self.matrix[parent_token, self.rank[node]]))
            paths.append((paths[parent] if parent >= 0 else []) + [tokens[-1]])
        return paths

    def observe(self, step: StepResult, harvested: list[list[int]]) -> None:
        if step.topk is None:  # the prefill: TR does not learn from the prompt
            return
        # In node order, so a token at several nodes keeps its last node's top-k.
        for token, ranked in zip([step.root, *step.proposal.tokens], step.topk):
            self.matrix[token] = ranked[: self.topk]

"""L, the statistics-dependent database: REST's retrieval datastore queried with the last
few tokens, as the official HD code queries it (``get_db`` in ``model/hierachy/decoding.py``).

Official behaviour (the defaults of ``hd``): the last ``previous_tokens`` tokens are queried,
then the last 1 (for P > 2: then 2, ..., P-1), and the answers of every query are pooled
(``union_queries``). Each answer is REST's draft tree for that query (``choices`` nodes over
continuations of ``retrieve_length`` tokens); its node paths, longest first, are cut to
``draft_length``, and a path equal to or a prefix-match of one already taken is skipped,
until ``guess`` drafts are collected. Each draft shorter than ``draft_length`` is padded
(``pad``) with one random vocabulary id, repeated; the official code draws one per draft,
full-length ones included, from an unseeded generator (seeded here, per request).

Fixes of ``hd_fixed``, each switchable alone: ``union_queries: false`` asks only the longest
query that has an answer; ``pad: false`` drafts short paths as they are (a random pad token
is almost never accepted and costs a verification slot).
"""

from __future__ import annotations

import random

from spec_bench.drafting.source import Resources, Source


class StatisticsSource(Source):
    def __init__(
        self,
        *,
        previous_tokens: int,
        draft_length: int,
        guess: int,
        choices: int,
        retrieve_length: int,
        max_retrieved: int,
        union_queries: bool,
        pad: bool,
        index=None,
        vocab_size: int = 0,
    ) -> None:
        if previous_tokens < 1 or draft_length < 1:
            raise ValueError("previous_tokens and draft_length must be >= 1")
        self.previous_tokens = previous_tokens
        self.draft_length = draft_length
        self.guess = guess
        self.choices = choices
        self.retrieve_length = retrieve_length
        self.max_retrieved = max_retrieved
        self.union_queries = union_queries
        self.pad = pad
        self.index = index
        self.vocab_size = vocab_size
        self.seed = 0
        self.rng = random.Random(0)

    def attach(self, resources: Resources) -> None:
        from spec_bench.datastore import open_run_datastore

        self.index = open_run_datastore(resources)
        self.vocab_size = int(resources.target.model.config.vocab_size)
        self.seed = resources.seed

    def reset(self, prompt_ids: list[int]) -> None:
        self.rng.seed(self.seed)
        self.index.start_request()

    def queries(self, context: list[int]) -> list[list[int]]:
        """The official order: the last P tokens, then the last 1, 2, ..., P-1."""
        longest = min(self.previous_tokens, len(context))
        return [context[-longest:]] + [context[-length:] for length in range(1, longest)]

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        drafts: list[list[int]] = []
        queries = self.queries(context)
        if not self.union_queries:
            queries = sorted(queries, key=len, reverse=True)
        for query in queries:
            nodes = self.index.search(query, self.choices, self.retrieve_length, self.max_retrieved)
            if not nodes:
                continue
            for path in sorted((path for path, _ in nodes), key=len, reverse=True):  # stable
                draft = path[: self.draft_length]
                if any(draft[:n] == taken[:n] for taken in drafts if (n := min(len(draft), len(taken)))):
                    continue  # the same as, or a prefix-match of, a draft already taken
                drafts.append(draft)
                if len(drafts) == self.guess:
                    return self._padded(drafts)
            if not self.union_queries:
                break
        return self._padded(drafts)

    def _padded(self, drafts: list[list[int]]) -> list[list[int]]:
        if not self.pad:
            return drafts
        padded = []
        for draft in drafts:
            filler = self.rng.randint(0, self.vocab_size - 1)  # drawn for every draft, as officially
            padded.append(draft + [filler] * (self.draft_length - len(draft)))
        return padded

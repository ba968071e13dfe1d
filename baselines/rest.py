"""REST: retrieval-based speculative decoding (He, Zhong, Cai, Lee, He; NAACL 2024), as a
draft source.

As Spec-Bench runs it (``model/rest``, DraftRetriever's ``search``): the longest suffix of the
context (``max_suffix`` tokens down to ``min_suffix``) that occurs in the datastore is the
query; the ``draft_length`` tokens after its first ``max_retrieved`` occurrences (per index
chunk, in suffix-array order) are counted prefix by prefix, the ``choices`` most frequent
prefixes kept, cut until their distinct tokens sum to ``choices``, and closed under prefixes
(``spec_bench.datastore.search``): the draft tree. With no match, REST verifies the token
id 100 as a one-token draft (``empty_draft_token``). Its nodes come most frequent first, so
a budget below the tree keeps the most frequent ones.

``rest_spread`` (ours) takes the occurrences evenly across the match range (REST's first
occurrences are those whose continuations sort first by token id) and keeps the ``choices``
most frequent nodes without the distinct-token cut (``cut: false``), so the budget, not the
cut, decides the tree's size.

The datastore is the run's (``datastore:`` in the run config; REST's UltraChat in
``bench=paper``, LIMA in the CPU profiles); either backend answers (see
``spec_bench.datastore``).
"""

from __future__ import annotations

from spec_bench.drafting.source import Resources, Source


class RestSource(Source):
    def __init__(
        self,
        *,
        max_suffix: int,
        min_suffix: int,
        draft_length: int,
        max_retrieved: int,
        choices: int,
        spread: bool,
        cut: bool,
        empty_draft_token: int | None,
        index=None,
    ) -> None:
        if not 1 <= min_suffix <= max_suffix:
            raise ValueError(f"need 1 <= min_suffix <= max_suffix, got {min_suffix}, {max_suffix}")
        self.max_suffix = max_suffix
        self.min_suffix = min_suffix
        self.draft_length = draft_length
        self.max_retrieved = max_retrieved
        self.choices = choices
        self.spread = spread
        self.cut = cut
        self.empty_draft_token = empty_draft_token
        self.index = index

    def attach(self, resources: Resources) -> None:
        from spec_bench.datastore import open_run_datastore

        self.index = open_run_datastore(resources)

    def reset(self, prompt_ids: list[int]) -> None:
        self.index.start_request()

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        nodes = self.retrieve(context)
        if not nodes:
            # REST also verifies its dummy when every match ends the indexed text (where its
            # reader would abort the process instead).
            return [[self.empty_draft_token]] if self.empty_draft_token is not None else []
        return [path for path, _ in nodes]

    def retrieve(self, context: list[int]) -> list[tuple[list[int], int]]:
        """The draft tree's nodes with their counts, most frequent first, parents first."""
        length = self.index.longest_suffix(context, self.max_suffix, self.min_suffix)
        if length == 0:
            return []
        return self.index.search(
            context[-length:], self.choices, self.draft_length, self.max_retrieved, self.spread, self.cut
        )

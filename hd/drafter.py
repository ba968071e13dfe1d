"""The hierarchical drafter: W, then S, then L, highest temporal locality first.

Each step drafts up to ``guess`` distinct continuations of ``draft_length`` tokens of the
last token, taking every candidate of a database before asking the next one (so a lower,
costlier database is only queried when the higher ones run short), and skipping any draft
already in the trie: the official code let W and S both spend a slot on the same draft.
Every draft node is labelled with its database, so records count accepted tokens per source.

HD runs on the Lookahead framework: the same Jacobi window rides along as branch tokens,
split from the drafts as ``LookaheadDrafter`` splits a tight budget, and its harvested
n-grams feed W.
"""

from __future__ import annotations

import random

from baselines.lookahead import JacobiWindow
from hd.context_db import ContextDB
from spec_bench.engine.proposal import Proposal, StepResult
from spec_bench.errors import HarnessError

SOURCES = ("W", "S", "L")


class HierarchyDrafter:
    name = "hd"

    def __init__(
        self,
        model_db=None,
        statistics_db=None,
        order: tuple[str, ...] = SOURCES,
        level: int = 5,
        window: int = 7,
        guess: int = 7,
        context_capacity: int = 7,
        seed: int = 0,
    ) -> None:
        unknown = [source for source in order if source not in SOURCES]
        if unknown or len(set(order)) != len(order):
            raise HarnessError(f"drafter.order must list distinct databases of W, S, L; got {list(order)}")
        self.order = tuple(order)
        self.level = level
        self.draft_length = level - 1
        self.guess = guess
        self.context_capacity = context_capacity
        self.seed = seed
        self.rng = random.Random(seed)
        self.window = JacobiWindow(level, window, self.rng)
        self.model_db = model_db
        self.statistics_db = statistics_db
        self.context_db = ContextDB(level, context_capacity)
        self.history: list[int] = []
        full_window = window * (level - 1) - 1
        self.window_share = full_window / (full_window + guess * (level - 1))

    def reset(self, prompt_ids: list[int]) -> None:
        self.rng.seed(self.seed)  # a question's run never depends on the ones before it
        self.window.reset(prompt_ids)
        self.context_db = ContextDB(self.level, self.context_capacity)
        self.context_db.add_sequence(prompt_ids)
        self.history = list(prompt_ids)
        if self.statistics_db is not None:
            self.statistics_db.start_request()

    def candidates(self, source: str, context: list[int], limit: int) -> list[list[int]]:
        if source == "W":
            return self.context_db.lookup(context[-1], limit)
        if source == "S":
            return self.model_db.lookup(context[-1], limit)
        return self.statistics_db.lookup(context, limit)

    def propose(self, context: list[int], budget: int) -> Proposal:
        proposal = Proposal()
        window = self.window
        reserved = window.size(window.columns_fitting(int(budget * self.window_share)))
        room = budget - reserved
        drafts = 0
        for source in self.order:
            if drafts >= self.guess or len(proposal) >= room:
                break
            # Ask for enough to fill the step even if some are duplicates of earlier ones.
            for candidate in self.candidates(source, context, self.guess):
                draft = candidate[: self.draft_length]
                if not draft or proposal.contains(draft):
                    continue
                if proposal.add_path(draft, source, room) == 0:
                    break  # the drafts' share of the budget is full
                drafts += 1
                if drafts >= self.guess:
                    break
        window.add_to(proposal, window.columns_fitting(budget - len(proposal)))
        return proposal

    def observe(self, step: StepResult) -> None:
        for ngram in self.window.advance(step.proposal, step.branch_predictions, step.tokens):
            self.context_db.add(ngram)
        # Accepted n-grams last: verified text is the freshest evidence.
        self.history.extend(step.tokens)
        self.context_db.add_sequence(self.history, new=len(step.tokens))


def build(cfg, target) -> HierarchyDrafter:
    settings = cfg.drafter
    level = int(settings.level)
    order = tuple(str(source).upper() for source in settings.order)
    model_db = statistics_db = None
    if "S" in order:
        from hd.model_db import model_db_for

        model_db = model_db_for(cfg, target, level)
    if "L" in order:
        from hd.statistics_db import StatisticsDB
        from spec_bench.datastore import datastore_for

        statistics_db = StatisticsDB(
            datastore_for(cfg, target.tokenizer),
            previous_tokens=int(settings.previous_tokens),
            draft_length=level - 1,
            max_retrieved=int(settings.statistics.max_retrieved),
            max_candidates=int(settings.statistics.max_candidates),
        )
    return HierarchyDrafter(
        model_db=model_db,
        statistics_db=statistics_db,
        order=order,
        level=level,
        window=int(settings.window),
        guess=int(settings.guess),
        context_capacity=int(settings.context_capacity),
        seed=int(cfg.get("seed", 0)),
    )

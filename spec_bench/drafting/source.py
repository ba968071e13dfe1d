"""The draft-source seam inside drafters.

A source answers one question each step: which continuations of this context would you
draft, best first, in at most ``room`` new trie nodes? Each answer is a list of paths
(token lists hanging below the last accepted token). Sources whose drafts are trees (REST,
Token Recycling) list one path per node, parents first, so a budget cut keeps the best
nodes. After the step, every source sees what was accepted, and the n-grams a Jacobi window
harvested (empty when the drafter has no window).

A source gets what the run provides beyond its own settings (the target's tokenizer, the
datastore and model-database settings, the cache folder) once, through ``attach``, before
its first request: its constructor takes settings only, so tests build sources from
hand-made values without a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spec_bench.engine.proposal import StepResult


@dataclass(frozen=True)
class Resources:
    """What a run lends its sources: the loaded target model, where caches and data live,
    the texts no database may be built from (the benchmark's own questions), the run's seed,
    and the run-level settings of the retrieval datastore and of HD's model database."""

    target: Any
    cache_dir: Path
    data_dir: Path
    excluded_texts: tuple[str, ...] = ()
    seed: int = 0
    datastore: dict = field(default_factory=dict)
    model_db: dict = field(default_factory=dict)


class DraftSource(Protocol):
    """One place drafts come from (a database, a lookup, a learned table)."""

    topk: int  # >0: wants the target's top-k next tokens at every verified node

    def attach(self, resources: Resources) -> None:
        """Load what this source needs from the run, once, before its first request."""

    def reset(self, prompt_ids: list[int]) -> None:
        """A new request starts with this prompt."""

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        """Draft paths continuing ``context``, best first; ``room`` new nodes are left."""

    def columns_needed(self, context: list[int], path: list[int]) -> int:
        """How many columns of the Jacobi window, verified in earlier steps, this source's
        draft ``path`` of ``context`` needed to exist (0: none)."""

    def observe(self, step: StepResult, harvested: list[list[int]]) -> None:
        """A step finished (``step.tokens`` are now context); ``harvested``: the Jacobi
        window's new n-grams, one per column it verified, in column order."""


class Source:
    """Defaults for the optional parts of ``DraftSource``: no resources, no per-request
    state, nothing learned from steps."""

    topk = 0
    needs_window = False  # True: drafts nothing unless a Jacobi window feeds it
    # The fewest nodes a step must verify for this source to learn as designed (a source
    # that learns from verified nodes learns less from a smaller tree, in steps after).
    min_room = 1

    def attach(self, resources: Resources) -> None:
        pass

    def reset(self, prompt_ids: list[int]) -> None:
        pass

    def columns_needed(self, context: list[int], path: list[int]) -> int:
        return 0

    def observe(self, step: StepResult, harvested: list[list[int]]) -> None:
        pass

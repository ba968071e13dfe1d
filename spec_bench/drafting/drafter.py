"""The one drafter: fills each step's budget from an ordered list of draft sources,
optionally beside a Jacobi window.

Every published method is this class with its own sources (``conf/drafter/<name>.yaml``):
PLD, REST and Token Recycling have one source and no window, Lookahead has its n-gram pool
and a window, HD has W, S and L and a window; any other list is a hierarchy of our own.

A step: the window's share of the budget is set aside first (see ``window_room``), then
each source in ``order`` is asked for drafts while room is left, highest locality first; a
lower source is only asked when the higher ones left room (and, with ``max_drafts``, fewer
drafts than that; ``capped`` names the sources counted against it, all by default). Each
draft node is labelled with its source, so records count the accepted tokens per source.
``max_nodes`` caps what one source may take (a hierarchy of our own can keep room for the
sources after it). ``dedup`` skips a draft already in the trie; without it (the
official HD code) a repeated draft still uses up one of the ``max_drafts``, although the
shared verifier merges identical prefixes, so it costs no extra node. Last, the window takes
whatever room is left, in whole columns.
"""

from __future__ import annotations

from collections.abc import Mapping

from spec_bench.drafting.jacobi import JacobiWindow
from spec_bench.drafting.source import DraftSource, Resources
from spec_bench.engine.proposal import Proposal, StepResult
from spec_bench.errors import HarnessError


class SourceDrafter:
    def __init__(
        self,
        *,
        name: str,
        paper_budget: int | None,
        sources: Mapping[str, DraftSource],
        order: list[str] | None = None,
        max_drafts: int | None = None,
        dedup: bool = True,
        window: JacobiWindow | None = None,
        max_accepted: int | None = None,
        max_nodes: Mapping[str, int] | None = None,
        capped: list[str] | None = None,
    ) -> None:
        order = list(sources) if order is None else [str(label) for label in order]
        unknown = [label for label in order if label not in sources]
        if unknown or len(set(order)) != len(order) or not order:
            raise HarnessError(
                f"drafter.order must list distinct sources of {', '.join(sources)}; got {order}"
            )
        if paper_budget is None:
            # What lade and the official HD code verify: the whole window and every draft.
            if window is None or max_drafts is None:
                raise HarnessError("drafter.paper_budget may be null only with a window and max_drafts")
            paper_budget = window.full_size + max_drafts * (window.level - 1)
        if paper_budget < 0:
            raise HarnessError(f"drafter.paper_budget must be >= 0, got {paper_budget}")
        self.name = name
        self.paper_budget = int(paper_budget)
        self.order = order
        self.sources = {label: sources[label] for label in order}  # unused sources are dropped
        self.max_drafts = max_drafts
        self.dedup = dedup
        self.window = window
        self.max_accepted = max_accepted
        self.max_nodes = dict(max_nodes or {})
        unknown_caps = sorted(set(self.max_nodes) - set(sources))
        if unknown_caps:
            raise HarnessError(f"drafter.max_nodes names no source: {', '.join(unknown_caps)}")
        self.capped = set(order if capped is None else capped)
        self.seed = 0
        self.topk = max((getattr(source, "topk", 0) for source in self.sources.values()), default=0)

    def attach(self, resources: Resources) -> SourceDrafter:
        self.seed = resources.seed
        for source in self.sources.values():
            source.attach(resources)
        return self

    def reset(self, prompt_ids: list[int]) -> None:
        if self.window is not None:
            self.window.reset(prompt_ids, self.seed)
        for source in self.sources.values():
            source.reset(prompt_ids)

    @property
    def min_budget(self) -> int:
        """The smallest budget this drafter works at as designed: the larger of
        ``learning_budget`` and ``window_budget``."""
        return max(self.learning_budget, self.window_budget)

    @property
    def learning_budget(self) -> int:
        """The smallest budget at which every source learns as designed: the most any source
        needs (``min_room``: Token Recycling's first level). Below it the drafter still
        drafts, but learns less a step."""
        return max(int(getattr(source, "min_room", 1)) for source in self.sources.values())

    @property
    def window_budget(self) -> int:
        """The smallest budget at which this drafter drafts at all: where every source needs
        the Jacobi window (Lookahead), room for two columns of the window alone (column 0
        only harvests n-grams of the root): a step with nothing to draft gives the window the
        whole budget, and what it harvests is drafted in the steps after. HD's W, S and L
        draft without the window, from one node."""
        if self.window is None or not all(
            getattr(source, "needs_window", False) for source in self.sources.values()
        ):
            return 1
        return min(2, self.window.window) * (self.window.level - 1) - 1

    def window_room(self, budget: int) -> int:
        """Nodes set aside for the Jacobi window. At the published budget and above, the
        whole window; below it (a choice of ours: the authors always verify everything), the
        window's published share of the budget, in whole columns. The window is all that
        fills the pool of drafts, so starving it starves later steps; drafts pay at once."""
        if self.window is None:
            return 0
        share = self.window.full_size / self.paper_budget if self.paper_budget else 1.0
        return self.window.size(self.window.columns_fitting(int(budget * min(share, 1.0))))

    def propose(self, context: list[int], budget: int) -> Proposal:
        proposal = Proposal(max_accepted=self.max_accepted)
        room = budget - self.window_room(budget)
        drafts = 0
        for label in self.order:
            counted = label in self.capped and self.max_drafts is not None
            if len(proposal) >= room or (counted and drafts >= self.max_drafts):
                continue
            cap = min(room, len(proposal) + self.max_nodes.get(label, room))
            source = self.sources[label]
            for path in source.lookup(context, cap - len(proposal)):
                if counted and drafts >= self.max_drafts:
                    break
                if not path or (self.dedup and proposal.contains(path)):
                    continue
                columns = source.columns_needed(context, path) if self.window is not None else 0
                if proposal.add_path(path, label, cap, columns) == 0 and not proposal.contains(path):
                    break  # this source's share is full
                drafts += counted
        if self.window is not None:
            self.window.add_to(proposal, self.window.columns_fitting(budget - len(proposal)))
        return proposal

    def smallest_budgets(self, proposal: Proposal, nodes: list[int], budget: int) -> list[int]:
        """For each of the draft ``nodes`` of ``proposal`` (verified under ``budget``), the
        smallest budget under which this drafter would have drafted it, had every step of the
        request verified that budget: one whose drafts' room holds the node's number and whose
        window has the columns that harvested its draft (``Proposal.columns``).

        Without a window a smaller budget's tree is the first nodes of a larger one's (node
        ``i`` needs ``i + 1``). With one, the columns also count: a narrower window's columns
        iterate as the wider one's first columns do, and harvest the same n-grams, so a draft
        harvested by column ``c`` would be missing from every budget whose window is narrower.
        An estimate (a narrower window also evicts less, and reaches each position in other
        steps), but what lets ``auto`` credit a window with the drafts it makes possible later,
        which the steps that verify it do not show."""
        if self.window is None:
            return [node + 1 for node in nodes]
        smallest = []
        for node in nodes:
            needed = proposal.columns[node]
            fits = (b for b in range(node + 1, budget) if self._holds(b, node, needed, proposal.n_drafts))
            smallest.append(next(fits, budget))
        return smallest

    def _holds(self, budget: int, node: int, columns: int, n_drafts: int) -> bool:
        """Whether ``budget``'s proposal holds draft ``node`` and a window of ``columns``
        columns (as ``propose`` fills it: the drafts' room first, the window what is left)."""
        room = budget - self.window_room(budget)
        drafts = min(room, n_drafts)
        return node < room and self.window.columns_fitting(budget - drafts) >= columns

    def observe(self, step: StepResult) -> None:
        harvested = self.window.advance(step) if self.window is not None else []
        for source in self.sources.values():
            source.observe(step, harvested)

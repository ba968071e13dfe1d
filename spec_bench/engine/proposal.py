"""The drafter contract: what crosses the seam between a drafter and the engine.

A drafter proposes a token tree rooted at the last accepted token; the engine verifies it
in one forward pass and reports back what was accepted. Nothing else crosses the seam.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

ROOT = -1  # parent index meaning "child of the last accepted token"


@dataclass
class Proposal:
    """Candidate continuations as a trie, plus optional unverified branch tokens.

    Draft node ``i`` holds ``tokens[i]`` and hangs below ``parents[i]`` (``ROOT`` or an
    earlier node). Siblings never repeat a token: ``add_path`` merges shared prefixes.

    Branch nodes (the Lookahead Jacobi window) form a second tree under the same root,
    invisible to the drafts and vice versa. Each branch node sees its ancestors, sits at
    position ``root + depth`` and is not verified: the engine only returns the model's
    greedy prediction after it in ``StepResult.branch_predictions``.

    ``columns`` holds, per draft node, how many columns of the drafter's Jacobi window had to
    be verified in earlier steps for the node's draft to exist (0: it needs no window), so a
    budget policy can tell what a narrower window would have drafted (``smallest_budgets``).

    ``max_accepted`` caps the draft tokens the engine may accept along any path (``None``:
    no cap). Nodes below the cap are still verified, and paid for: that is how lade's
    verification loop works (it never counts a guess's last token as matched).
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)
    branch_tokens: list[int] = field(default_factory=list)
    branch_parents: list[int] = field(default_factory=list)
    max_accepted: int | None = None
    _child: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.tokens) + len(self.branch_tokens)

    @property
    def n_drafts(self) -> int:
        return len(self.tokens)

    def add_path(self, path: list[int], source: str, budget: int, columns: int = 0) -> int:
        """Merge ``path`` into the trie without exceeding ``budget`` nodes in total
        (drafts and branch); its new nodes needed ``columns`` window columns. Returns how
        many new nodes were added."""
        parent, added = ROOT, 0
        for token in path:
            node = self._child.get((parent, token))
            if node is None:
                if len(self) >= budget:
                    break
                node = len(self.tokens)
                self.tokens.append(token)
                self.parents.append(parent)
                self.sources.append(source)
                self.columns.append(columns)
                self._child[(parent, token)] = node
                added += 1
            parent = node
        return added

    def contains(self, path: list[int]) -> bool:
        """Whether ``path`` is already a root-to-node path of the trie."""
        parent = ROOT
        for token in path:
            parent = self._child.get((parent, token))
            if parent is None:
                return False
        return True

    def child(self, parent: int, token: int) -> int | None:
        return self._child.get((parent, token))

    def add_branch(self, token: int, parent: int = ROOT) -> int:
        """Append one branch node below ``parent`` (``ROOT`` or an earlier branch node)."""
        self.branch_tokens.append(token)
        self.branch_parents.append(parent)
        return len(self.branch_tokens) - 1


@dataclass
class StepResult:
    """What one verification step decided.

    ``tokens`` are the tokens appended to the output this step: the accepted draft tokens
    followed by the bonus token (cut short at EOS or the token limit). ``sources`` labels
    each of them (``"bonus"`` for the token the model produced itself).

    ``root`` is the token the verified tree hung below (the last token before the step;
    ``None`` at the prefill). ``topk`` holds, for the root and then every draft node in
    proposal order, the ids of the target's ``k`` most likely next tokens there, best first,
    when the drafter asked for them (its ``topk`` attribute; ``None`` otherwise, and at the
    prefill step).
    """

    tokens: list[int]
    sources: list[str]
    proposal: Proposal
    branch_predictions: list[int] = field(default_factory=list)
    topk: list[list[int]] | None = None
    root: int | None = None

    @property
    def n_accepted_drafts(self) -> int:
        return sum(source != "bonus" for source in self.sources)


class Drafter(Protocol):
    """Proposes token trees; learns from what the engine accepted.

    ``paper_budget`` is what its authors verify per step besides the root
    (``engine.budget=paper``); ``topk`` (optional, default 0) asks the engine for the
    target's top-k next tokens at every verified node."""

    name: str
    paper_budget: int

    def reset(self, prompt_ids: list[int]) -> None:
        """Start a new request whose prompt is ``prompt_ids``."""

    def propose(self, context: list[int], budget: int) -> Proposal:
        """Draft continuations of ``context`` (prompt plus output so far) in at most
        ``budget`` nodes, drafts and branch tokens together."""

    def observe(self, step: StepResult) -> None:
        """Learn from a finished step (``step.tokens`` are now part of the context)."""


class NoDrafter:
    """Autoregressive decoding: the same engine with an empty proposal."""

    paper_budget = 0

    def __init__(self, name: str = "ar") -> None:
        self.name = name

    def reset(self, prompt_ids: list[int]) -> None:
        pass

    def propose(self, context: list[int], budget: int) -> Proposal:
        return Proposal()

    def observe(self, step: StepResult) -> None:
        pass

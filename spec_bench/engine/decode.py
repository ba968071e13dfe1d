"""The decoding loop: prefill once, then draft -> verify -> accept -> observe until done.

The prefill's last logits give the first token (as in transformers' ``generate``), so a
request costs one forward per step and no more.

AR and every drafter run through ``Engine.generate``; AR is simply a drafter that never
proposes anything, so both pay for exactly the same loop, cache and verifier.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from spec_bench.engine.budget import BudgetPolicy, FixedBudget
from spec_bench.engine.cache import TreeCache
from spec_bench.engine.proposal import ROOT, Drafter, Proposal, StepResult
from spec_bench.engine.verify import (
    Acceptance,
    TreeInputBuilder,
    accept_greedy,
    accept_sampling,
    tree_logits,
)
from spec_bench.errors import HarnessError

# The prompt's forward is its own phase: a 700-token prompt costs as much as tens of steps,
# and charged to "forward" it made a step's forward look 50% dearer than the cost curve.
PHASES = ("prefill", "draft", "forward", "accept", "bookkeeping")
MAX_TREE_ROOM = 129  # cache rows reserved beyond prompt + answer for the last step's tree


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a timed answer (as ``timeit`` does), back on
    after. Its full passes walk every tracked object, and a benchmark holding many drafters
    (suffix trees, pools: 0.5-1 million objects) paused 0.3 s to 2 s a pass, billed to
    whichever answer allocated at that moment: in one ``make bench`` run one suffix variant's
    drafting cost 8.8 ms a step instead of 0.9. Collection happens between answers instead."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Generation:
    """One answer and how it was produced."""

    tokens: list[int]
    stop_reason: str  # "eos", "max_new_tokens" or "context"
    accept_lengths: list[int] = field(default_factory=list)  # tokens gained per step, bonus included
    budgets: list[int] = field(default_factory=list)  # verification budget chosen per step
    proposed: list[int] = field(default_factory=list)  # nodes actually verified per step
    accepted_by_source: dict[str, int] = field(default_factory=dict)
    phase_times: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    wall_time_s: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.accept_lengths)


class _Clock:
    """Charges elapsed time to phases; on CUDA it synchronises first so kernels queued in
    one phase are not billed to the next."""

    def __init__(self, times: dict[str, float], device: torch.device) -> None:
        self.times = times
        self.sync = torch.cuda.synchronize if device.type == "cuda" else None
        self.last = self.paused_at = self._now()
        self.outside = 0.0  # seconds between ``pause`` and ``resume``: not this request's

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter()

    # No synchronising in ``pause`` and ``resume``: every step ends with a ``charge`` (which
    # synchronises), and a caller interleaving answers synchronises around each of their steps
    # (``run_lockstep``); ``generate`` pauses every step, so two more waits on the GPU a step
    # would be pure cost.
    def pause(self) -> None:
        self.paused_at = time.perf_counter()

    def resume(self) -> None:
        """Count again, leaving out the time since ``pause`` (another answer's turn)."""
        self.last = time.perf_counter()
        self.outside += self.last - self.paused_at

    def charge(self, phase: str) -> None:
        now = self._now()
        self.times[phase] += now - self.last
        self.last = now


@dataclass
class _Request:
    """One ``generate`` call's state, read and written by every step."""

    context: list[int]  # prompt plus output so far; its last token is the next root
    cache: TreeCache
    generator: torch.Generator
    clock: _Clock
    result: Generation
    limit: int  # new tokens this request may produce
    topk: int  # >0: the drafter wants the target's top-k at every verified node
    # Proposals drafted beside AR steps and never verified, with the context length they
    # continue: scored against the tokens that follow (see ``_score_shadows``).
    shadows: list[tuple[int, int, Proposal]] = field(default_factory=list)

    @property
    def tokens_left(self) -> int:
        return self.limit - len(self.result.tokens)


class Engine:
    """Decodes with one target model at one temperature."""

    def __init__(self, target, temperature: float = 0.0, budget: BudgetPolicy | None = None) -> None:
        self.target = target
        self.model = target.model
        self.temperature = float(temperature)
        self.budget = budget or FixedBudget(16)
        self.inputs = TreeInputBuilder(target.device, target.dtype)

    def generate(
        self, prompt_ids: list[int], drafter: Drafter, max_new_tokens: int, seed: int = 0
    ) -> Generation:
        with gc_paused(), torch.inference_mode():
            steps = self.steps(prompt_ids, drafter, max_new_tokens, seed)
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    return done.value

    def steps(
        self, prompt_ids: list[int], drafter: Drafter, max_new_tokens: int, seed: int = 0
    ) -> Generator[None, None, Generation]:
        """``generate`` one step at a time: yields after the prefill and after every step, and
        returns the ``Generation``. For a caller that interleaves answers step by step (a
        benchmark timing two of them in lockstep); the caller holds ``torch.inference_mode``
        (and ``gc_paused`` when timing): entered inside a generator, such a mode would be
        left on another generator's turn. Time spent between steps is charged to no phase; on
        a GPU the caller synchronises before another answer's turn, or that turn's queued
        kernels would be charged to this answer's next phase."""
        target = self.target
        if not prompt_ids:
            raise HarnessError("empty prompt")
        room = target.context_window - len(prompt_ids)
        if room <= 0:
            raise HarnessError(
                f"prompt of {len(prompt_ids)} tokens does not fit the context window of "
                f"{target.name} ({target.context_window} tokens)"
            )
        limit = min(max_new_tokens, room)
        result = Generation(tokens=[], stop_reason="max_new_tokens")
        start = time.perf_counter()
        request = _Request(
            context=list(prompt_ids),
            # Room for the prompt, the answer and one more tree, reserved once.
            cache=TreeCache(capacity=len(prompt_ids) + limit + MAX_TREE_ROOM),
            generator=torch.Generator().manual_seed(seed),
            clock=_Clock(result.phase_times, target.device),
            result=result,
            limit=limit,
            topk=int(getattr(drafter, "topk", 0) or 0),
        )
        # Every request starts from the same policy state, so no answer depends on the
        # questions decoded before it.
        self.budget.reset()
        drafter.reset(list(prompt_ids))
        request.clock.charge("draft")
        step = self._prefill(request)
        while True:
            request.clock.pause()
            yield
            request.clock.resume()
            drafter.observe(step)
            request.clock.charge("draft")
            result.tokens += step.tokens
            request.context += step.tokens
            if request.shadows:
                self._score_shadows(request)
            result.accept_lengths.append(len(step.tokens))
            for source in step.sources:
                result.accepted_by_source[source] = result.accepted_by_source.get(source, 0) + 1
            if step.tokens[-1] in target.eos_token_ids:
                result.stop_reason = "eos"
                break
            if len(result.tokens) >= limit:
                if limit < max_new_tokens:
                    result.stop_reason = "context"
                break
            step = self._step(request, drafter)
        result.wall_time_s = time.perf_counter() - start - request.clock.outside
        return result

    def _prefill(self, request: _Request) -> StepResult:
        """The whole prompt in one forward, whose last logits give the first token, as in
        transformers' ``generate``: the first step, verifying nothing (budget 0)."""
        prompt = torch.tensor([request.context], device=self.target.device)
        # One row of logits, not a vocab-sized row per prompt token.
        logits = self.model(input_ids=prompt, cache=request.cache, use_cache=True, logits_to_keep=1).logits[0]
        request.clock.charge("prefill")
        nothing = Proposal()
        acceptance = self._accept(logits, nothing, request.generator)
        request.result.budgets.append(0)
        request.result.proposed.append(0)
        request.clock.charge("accept")
        return StepResult([acceptance.bonus_token], ["bonus"], nothing)

    def _shadow_budget(self, request: _Request) -> int:
        """Nodes to draft, unverified, beside an AR step the policy chose (0: none)."""
        shadow = getattr(self.budget, "shadow_budget", None)
        if shadow is None:
            return 0
        return self._fitting(request, shadow())

    def _fitting(self, request: _Request, budget: int) -> int:
        """``budget`` cut so the tree stays inside the context window and verifies no draft
        past the token limit (it could never be emitted)."""
        context_room = self.target.context_window - len(request.context)
        return max(0, min(budget, context_room, request.tokens_left - 1))

    def _score_shadows(self, request: _Request) -> None:
        """Tell the policy what each unverified proposal would have gained, once the tokens
        after it decide: at T=0 exactly what verification would have accepted; at T>0 a
        draft token matched with the probability that verification accepts it."""
        waiting = []
        for length, shadow, proposal in request.shadows:
            path = _shadow_path(proposal, request.context[length:])
            if path is None:
                waiting.append((length, shadow, proposal))
                continue
            if proposal.max_accepted is not None:
                path = path[: proposal.max_accepted]
            self.budget.record(shadow, len(proposal), len(path), path)
        request.shadows = waiting

    def _accept(self, logits: torch.Tensor, proposal: Proposal, generator: torch.Generator) -> Acceptance:
        if self.temperature > 0:
            return accept_sampling(logits, proposal, self.temperature, generator)
        return accept_greedy(logits, proposal)

    def _step(self, request: _Request, drafter: Drafter) -> StepResult:
        """Draft, verify the tree in one forward, accept, keep the accepted path's cache."""
        context, clock, result = request.context, request.clock, request.result
        past_length = len(context) - 1  # the root (last token) is not cached yet
        budget = self._fitting(request, self.budget.choose())
        result.budgets.append(budget)
        proposal = drafter.propose(context, budget)
        shadow = self._shadow_budget(request)
        # A smaller tree is measured by the verified one. So is a larger one where the drafter
        # left the budget unfilled: a nested drafter's tree under any budget is the first nodes
        # of its tree under a larger one, so it had nothing more to add. (On ``make bench``'s
        # six prompts at auto this drafts 24 trees fewer for the suffix tree, whose steps
        # propose about one node, 28 for PLD and 18 for REST, with the same budgets chosen.)
        measured_alike = shadow > budget > len(proposal)
        if shadow > budget and not measured_alike:
            request.shadows.append((len(context), shadow, drafter.propose(context, shadow)))
        clock.charge("draft")
        if len(proposal) > budget:
            raise HarnessError(
                f"drafter '{drafter.name}' proposed {len(proposal)} tokens, over the budget of {budget}"
            )

        inputs = self.inputs.build(context[-1], proposal, past_length)
        clock.charge("bookkeeping")
        logits = tree_logits(self.model, inputs, request.cache)[0]
        clock.charge("forward")

        acceptance = self._accept(logits, proposal, request.generator)
        accepted = acceptance.accepted_nodes
        tokens = [proposal.tokens[node] for node in accepted] + [acceptance.bonus_token]
        sources = [proposal.sources[node] for node in accepted] + ["bonus"]
        tokens, sources = _stop_early(tokens, sources, request.tokens_left, self.target.eos_token_ids)
        topk = None
        if request.topk:  # root and drafts, not the window's branch nodes
            topk = logits[: 1 + proposal.n_drafts].topk(request.topk, dim=-1).indices.tolist()
        clock.charge("accept")

        # Keep the root and the accepted drafts; the bonus token is next step's root.
        kept = [past_length] + [past_length + 1 + node for node in accepted]
        request.cache.keep(past_length, kept)
        ranks = accepted
        if getattr(self.budget, "measures_smaller", False):
            ranks = _ranks(drafter, proposal, accepted, budget)
        self.budget.record(budget, len(proposal), len(accepted), ranks)
        if measured_alike:
            self.budget.record(shadow, len(proposal), len(accepted), ranks)
        result.proposed.append(len(proposal))
        clock.charge("bookkeeping")
        return StepResult(tokens, sources, proposal, acceptance.branch_predictions, topk, root=context[-1])


def _ranks(drafter: Drafter, proposal: Proposal, accepted: list[int], budget: int) -> list[int]:
    """The accepted nodes as a budget policy reads them: each one's number in the smallest
    tree holding it, so that a tree of ``c`` nodes holds those numbered below ``c``. A
    drafter whose smaller trees are not its larger tree's first nodes (a Jacobi window, whose
    columns feed later drafts) says which budget would have held each (``smallest_budgets``)."""
    smallest = getattr(drafter, "smallest_budgets", None)
    if smallest is None or not accepted:
        return accepted
    return [b - 1 for b in smallest(proposal, accepted, budget)]


def _shadow_path(proposal: Proposal, continuation: list[int]) -> list[int] | None:
    """The draft nodes ``continuation`` walks down from the root, or None while it could
    still go deeper (the tokens that would decide it are not there yet)."""
    parent, path = ROOT, []
    for token in continuation:
        node = proposal.child(parent, token)
        if node is None:
            return path
        path.append(node)
        parent = node
    has_children = any(p == parent for p in proposal.parents)
    return None if has_children else path


def _stop_early(
    tokens: list[int], sources: list[str], tokens_left: int, eos_ids: set[int]
) -> tuple[list[int], list[str]]:
    """Cut a step's tokens where AR would have stopped: after EOS or at the token limit."""
    cut = min(len(tokens), tokens_left)
    for index, token in enumerate(tokens[:cut]):
        if token in eos_ids:
            cut = index + 1
            break
    return tokens[:cut], sources[:cut]

"""The engine's cost model and the automatic verification budget (``engine.budget=auto``).

Cost: at start-up, the latency of one verification forward is measured against the number
of tokens it feeds (root plus tree), through the real verifier path (``TreeInputBuilder``
and the model on a ``TreeCache`` holding a realistic prefix). The curve depends on the
model, device, dtype and thread count, so it is cached per those as JSON and reused.

Budget: a step that verifies ``b`` nodes gains ``1 + a`` tokens (``a`` accepted drafts) and
costs about ``latency(1 + proposed)``, where ``proposed <= b`` is what the drafter actually
filled (a drafter with no match proposes nothing, and then a large budget costs nothing).
Over many steps, tokens per second under a fixed ``b`` is ``E[1 + a | b] / E[cost | b]``
(renewal-reward: a ratio of expectations, not the mean of per-step ratios), so
``AutoBudget`` keeps, for each candidate ``b`` in ``{0, 1, 2, 4, ..., max_budget}``, running
means of the tokens gained and of the cost, and verifies the ``b`` with the best ratio.

- ``b = 0`` is an AR step: one token for ``latency(1)``, known without trying it.
- Unseen budgets are valued by a prior, ``a(b) = 1 - 2^-b`` at ``latency(1 + b)``: each
  successive draft token accepted with probability 1/2 along a chain, saturating at one
  accepted draft per step (Spec-Bench's published MAT for PLD, REST and Lookahead is 1.6 to
  1.8). With the measured curve this prior starts where verifying is nearly free (a few
  tokens on a CPU, tens on a GPU); a budget's first observation replaces it.
- Running means forget with a horizon of ``memory`` observations per budget, because
  acceptance drifts with the content (copying phases, new questions).
- Exploration is local: each neighbour of the current best is tried every ``explore_every``
  steps. Accepted drafts are concave in ``b`` (the best drafts come first, so each extra node
  is worth less) and the latency curve is convex (flat, then linear), so the throughput
  ratio is unimodal in ``b``: the neighbours of the best are the only places a better budget
  can be, and trying them costs little since they are near-optimal too. A try that confirms
  a neighbour is worse doubles its wait (up to 8x), so a settled choice costs almost nothing;
  a new best resets the waits.

Budgets only change what is verified, never what is emitted: greedy outputs are identical
for every budget. The choice is deterministic (no random exploration), so runs repeat.
The per-step overhead outside the forward (about a millisecond here) is left out of the cost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from spec_bench.engine.cache import TreeCache
from spec_bench.engine.proposal import Proposal
from spec_bench.engine.verify import TreeInputBuilder
from spec_bench.files import write_text_atomic

log = logging.getLogger(__name__)

SIZES = (1, 2, 4, 8, 16, 32, 64, 128)  # tokens per forward, root included
PREFIX_LENGTH = 300  # cached tokens before the tree: about a Spec-Bench prompt
REPEATS = 3
CHAIN_LENGTH = 10  # the measured tree: chains of this many tokens below the root, like PLD's
FORMAT = 1  # bump when the cached file's meaning changes
MAX_WAIT_FACTOR = 8  # a neighbour confirmed worse is still tried every 8 x explore_every steps


@dataclass
class LatencyCurve:
    """Median forward latency (seconds) against tokens fed (root included)."""

    sizes: list[int]
    seconds: list[float]
    settings: dict = field(default_factory=dict)  # what was measured, and where

    def latency(self, tokens: int) -> float:
        """Piecewise-linear in between measured sizes, linear beyond the last two."""
        sizes, seconds = self.sizes, self.seconds
        if tokens <= sizes[0] or len(sizes) == 1:
            return seconds[0]
        for index in range(1, len(sizes)):
            if tokens <= sizes[index] or index == len(sizes) - 1:
                low, high = sizes[index - 1], sizes[index]
                slope = (seconds[index] - seconds[index - 1]) / (high - low)
                return seconds[index - 1] + slope * (tokens - low)
        raise AssertionError("unreachable")


def measure_latency_curve(
    target, sizes: Sequence[int] = SIZES, prefix_length: int = PREFIX_LENGTH, repeats: int = REPEATS
) -> LatencyCurve:
    """Time verification forwards of ``sizes`` tokens after a ``prefix_length`` prefix.

    Sizes are interleaved within each repeat, so slow drift of a shared machine hits them
    all alike; each size is warmed up once first; CUDA is synchronised around every timing.
    """
    device = target.device
    generator = torch.Generator().manual_seed(0)
    vocab = int(getattr(target.model.config, "vocab_size", 32000))
    prefix = torch.randint(100, vocab, (1, prefix_length), generator=generator)
    builder = TreeInputBuilder(device, target.dtype)
    trees = {size: _tree(size - 1, vocab, generator) for size in sizes}
    cache = TreeCache(capacity=prefix_length + max(sizes))
    timings: dict[int, list[float]] = {size: [] for size in sizes}
    with torch.inference_mode():
        target.model(input_ids=prefix.to(device), cache=cache, use_cache=True, logits_to_keep=1)
        for repeat in range(repeats + 1):  # the first round warms up
            for size in sizes:
                elapsed = _timed_forward(target, builder, cache, trees[size], prefix_length)
                if repeat:
                    timings[size].append(elapsed)
    return LatencyCurve(
        sizes=list(sizes),
        seconds=[statistics.median(timings[size]) for size in sizes],
        settings=curve_settings(target, sizes, prefix_length, repeats),
    )


def _tree(nodes: int, vocab: int, generator: torch.Generator) -> Proposal:
    """A realistic draft tree: chains of ``CHAIN_LENGTH`` tokens below the root."""
    tokens = torch.randint(100, vocab, (nodes,), generator=generator).tolist()
    proposal = Proposal()
    for start in range(0, nodes, CHAIN_LENGTH):
        proposal.add_path(tokens[start : start + CHAIN_LENGTH], "cost", nodes)
    return proposal


def _timed_forward(target, builder: TreeInputBuilder, cache: TreeCache, tree: Proposal, past: int) -> float:
    sync = torch.cuda.synchronize if target.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    inputs = builder.build(0, tree, past)
    target.model(
        input_ids=inputs.input_ids,
        position_ids=inputs.position_ids,
        attention_mask=inputs.attention_mask,
        cache=cache,
        use_cache=True,
    ).logits.argmax(dim=-1).tolist()  # as a verification step ends: one host sync
    elapsed = time.perf_counter() - start
    cache.keep(past, [])
    return elapsed


def curve_settings(target, sizes: Sequence[int], prefix_length: int, repeats: int) -> dict:
    return {
        "format": FORMAT,
        "model": target.name,
        "source": target.source,
        "kernels": target.kernels,
        "device": _device_label(target.device),
        "dtype": str(target.dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sizes": list(sizes),
        "prefix_length": prefix_length,
        "repeats": repeats,
    }


def curve_path(target, cache_dir: str | os.PathLike) -> Path:
    """``<cache_dir>/cost/<model>-<source hash>-<device>-<dtype>-<threads>t.json``."""
    source_hash = hashlib.sha256(target.source.encode()).hexdigest()[:12]
    dtype = str(target.dtype).removeprefix("torch.")
    name = f"{target.name}-{source_hash}-{_device_label(target.device)}-{dtype}-{torch.get_num_threads()}t"
    if target.kernels != "default":
        name += f"-{target.kernels}"
    return Path(cache_dir) / "cost" / f"{name}.json"


def _device_label(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    gpu = torch.cuda.get_device_name(device).lower()
    return "cuda-" + "-".join("".join(ch if ch.isalnum() else " " for ch in gpu).split())


def load_latency_curve(
    target,
    cache_dir: str | os.PathLike,
    sizes: Sequence[int] = SIZES,
    prefix_length: int = PREFIX_LENGTH,
    repeats: int = REPEATS,
    refresh: bool = False,
    measure: Callable[..., LatencyCurve] = measure_latency_curve,
) -> LatencyCurve:
    """The cached curve when one was measured with these settings, else a new measurement
    (written atomically, so concurrent runs never read half a file)."""
    path = curve_path(target, cache_dir)
    wanted = curve_settings(target, sizes, prefix_length, repeats)
    if not refresh and path.is_file():
        try:
            curve = LatencyCurve(**json.loads(path.read_text()))
            if curve.settings == wanted:
                return curve
            log.info("cost curve %s was measured with other settings; measuring again", path)
        except (OSError, ValueError, TypeError) as error:
            log.warning("unreadable cost curve %s (%s); measuring again", path, error)
    log.info("measuring forward latency for sizes %s (cached at %s)", list(sizes), path)
    curve = measure(target, sizes=sizes, prefix_length=prefix_length, repeats=repeats)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(asdict(curve), indent=2) + "\n")
    return curve


class AutoBudget:
    """Picks each step's budget to maximise expected accepted tokens per second (see the
    module docstring for the model)."""

    def __init__(
        self, curve: LatencyCurve, max_budget: int = 64, explore_every: int = 8, memory: int = 32
    ) -> None:
        if max_budget < 1 or explore_every < 1 or memory < 1:
            raise ValueError("need max_budget, explore_every and memory >= 1")
        self.curve = curve
        self.explore_every = explore_every
        self.memory = memory
        self.candidates = [0] + [1 << k for k in range(max_budget.bit_length()) if 1 << k <= max_budget]
        # Per candidate: running means of tokens gained and of cost per step, the prior
        # until observed; candidate 0 (an AR step) is exact and never updated.
        self.tokens = {b: 2.0 - 0.5**b for b in self.candidates}
        self.seconds = {b: curve.latency(1 + b) for b in self.candidates}
        self.observed = dict.fromkeys(self.candidates, 0)
        # Steps to wait before exploring each candidate again, and when it was last tried.
        self.wait = dict.fromkeys(self.candidates, explore_every)
        self.tried_at = dict.fromkeys(self.candidates, 0)
        self.steps = 0
        self.current = self.best()

    def rate(self, budget: int) -> float:
        """Estimated tokens per second when verifying ``budget`` nodes per step."""
        return self.tokens[budget] / self.seconds[budget]

    def best(self) -> int:
        """The candidate with the highest estimated rate (the smaller one on ties)."""
        return max(self.candidates, key=lambda b: (self.rate(b), -b))

    def choose(self) -> int:
        self.steps += 1
        best = self.best()
        if best != self.current:  # new terrain: explore around it at the base pace again
            self.current = best
            self.wait = dict.fromkeys(self.candidates, self.explore_every)
        index = self.candidates.index(best)
        neighbours = self.candidates[max(1, index - 1) : index] + self.candidates[index + 1 : index + 2]
        due = [b for b in neighbours if self.steps - self.tried_at[b] >= self.wait[b]]  # 0 is known
        choice = min(due, key=lambda b: self.tried_at[b]) if due else best
        self.tried_at[choice] = self.steps
        return choice

    def record(self, budget: int, proposed: int, accepted_drafts: int) -> None:
        # Budgets cut short (context window, token limit) count for the candidate below.
        bucket = max(b for b in self.candidates if b <= budget)
        if bucket == 0:
            return
        self.observed[bucket] += 1
        weight = 1.0 / min(self.observed[bucket], self.memory)  # the first observation replaces the prior
        self.tokens[bucket] += weight * (1 + accepted_drafts - self.tokens[bucket])
        self.seconds[bucket] += weight * (self.curve.latency(1 + proposed) - self.seconds[bucket])
        if bucket != self.current and self.rate(bucket) < self.rate(self.current):
            # Confirmed worse: try it half as often (a settled choice then costs ~nothing).
            self.wait[bucket] = min(2 * self.wait[bucket], MAX_WAIT_FACTOR * self.explore_every)

    def summary(self) -> dict[int, dict[str, float]]:
        """Per candidate: observations, mean tokens per step, mean cost, estimated rate."""
        return {
            b: {
                "observed": self.observed[b],
                "tokens_per_step": self.tokens[b],
                "seconds_per_step": self.seconds[b],
                "tokens_per_s": self.rate(b),
            }
            for b in self.candidates
        }


def auto_budget(cfg, target) -> AutoBudget:
    """``engine.budget=auto``: the cached (or freshly measured) curve and the policy's settings."""
    engine = cfg.engine
    curve = load_latency_curve(
        target,
        cfg.cache_dir,
        sizes=[int(size) for size in engine.get("cost_sizes", SIZES)],
        prefix_length=int(engine.get("cost_prefix_length", PREFIX_LENGTH)),
        repeats=int(engine.get("cost_repeats", REPEATS)),
        refresh=bool(engine.get("cost_refresh", False)),
    )
    return AutoBudget(
        curve,
        max_budget=int(engine.max_budget),
        explore_every=int(engine.get("explore_every", 8)),
        memory=int(engine.get("acceptance_memory", 32)),
    )

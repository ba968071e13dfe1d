"""Ways of decoding a prompt, timed from outside and run interleaved so a shared machine's
drift spreads over all of them: our engine with a drafter and a budget policy, and
transformers' ``generate`` (plain, with its prompt lookup, or with a static cache and a
compiled forward)."""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from spec_bench.engine.decode import PHASES, Engine, gc_paused

PROMPT_LOOKUP_TOKENS = 10  # generate's prompt lookup, with Spec-Bench's num_pred_tokens


@dataclass
class Outcome:
    tokens: list[int]
    seconds: float = 0.0
    steps: int = 0  # our engine only
    budgets: list[int] = field(default_factory=list)
    proposed: list[int] = field(default_factory=list)
    accept_lengths: list[int] = field(default_factory=list)
    phase_times: dict[str, float] = field(default_factory=dict)


class Variant:
    """One way of decoding: ``run(prompt_ids, max_new_tokens) -> Outcome``, timed from outside;
    for our engine, with the budget ``policy`` and ``drafter`` it decodes with, and ``steps``,
    the same answer one step at a time (a generator returning the ``Outcome``). Variants of one
    ``group`` answer each prompt together (see ``run_interleaved``)."""

    def __init__(
        self, name: str, target, run, policy=None, group: str | None = None, drafter=None, steps=None
    ) -> None:
        self.name, self.target, self._run, self.policy = name, target, run, policy
        self.group, self.drafter, self.steps = group, drafter, steps

    def __call__(self, prompt_ids: list[int], max_new_tokens: int) -> Outcome:
        with gc_paused():  # transformers' generate as our engine: no collector pass timed
            _sync(self.target)
            start = time.perf_counter()
            outcome = self._run(prompt_ids, max_new_tokens)
            _sync(self.target)
            outcome.seconds = time.perf_counter() - start
        return outcome


def _sync(target) -> None:
    if target.device.type == "cuda":
        torch.cuda.synchronize(target.device)


def engine_variant(name: str, target, drafter, policy, group: str | None = None) -> Variant:
    engine = Engine(target, 0.0, policy)

    def run(prompt_ids, max_new_tokens):
        return _outcome(engine.generate(prompt_ids, drafter, max_new_tokens))

    def steps(prompt_ids, max_new_tokens):
        return _outcome((yield from engine.steps(prompt_ids, drafter, max_new_tokens)))

    return Variant(name, target, run, policy, group, drafter, steps)


def _outcome(generation) -> Outcome:
    return Outcome(
        generation.tokens,
        steps=generation.steps,
        budgets=generation.budgets,
        proposed=generation.proposed,
        accept_lengths=generation.accept_lengths,
        phase_times=generation.phase_times,
    )


def generate_variant(name: str, target, **kwargs) -> Variant:
    eos = sorted(target.eos_token_ids)

    @torch.inference_mode()
    def run(prompt_ids, max_new_tokens):
        input_ids = torch.tensor([prompt_ids], device=target.device)
        output = target.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos[0],
            **kwargs,
        )
        return Outcome(output[0, len(prompt_ids) :].tolist())

    return Variant(name, target, run)


def run_interleaved(
    make_variants: Callable[[], list[Variant]],
    prompts,
    max_new_tokens: int,
    warmup_tokens: int,
    rounds: int = 1,
    seed: int = 0,
) -> tuple[dict, dict[str, float]]:
    """Each variant answers each prompt, in an order shuffled afresh for every prompt and
    round (seeded: runs repeat). Each is warmed up (untimed, but its seconds returned: a
    compiled forward compiles there) on the first two prompts, so a compiled forward has seen
    two shapes before timing.

    Shuffled, not rotated: a rotation keeps every variant behind the same neighbour, and in a
    run where each drafter's ``@auto`` variant followed the previous drafter's widest fixed
    budget, Token Recycling at auto lost 2% to its fixed 8 on every prompt while verifying the
    same trees. An answer's cost should not depend on which variant ran before it.

    With ``rounds`` > 1 the whole run is repeated on a fresh set of variants, and the faster of
    each variant's answers to a prompt is kept: a noisy neighbour's burst slows one answer by
    10-30% on the 2-core EPYC, and the minimum of repeated timings discards it for every
    variant alike. Fresh, because Token Recycling and the suffix trees learn from every
    answer: reused, they would meet each prompt a second time having seen its answer.
    Decoding is deterministic (the automatic budget too), so every round decodes the same
    tokens; a difference is reported on stderr.

    Variants given a ``group`` answer each prompt together (groups in a shuffled order, and
    members shuffled within): in lockstep, a step each in turn, where every member can decode
    one step at a time (``run_lockstep``), else one right after another. Two variants compared
    with each other then meet the same moments of a shared machine."""
    order = random.Random(seed)
    warm_up: dict[str, float] = {}
    outcomes: dict[str, list[Outcome]] = {}
    for round_ in range(rounds):
        variants = make_variants()
        for variant in variants:
            started = time.perf_counter()
            for _, prompt_ids in prompts[:2]:
                variant(prompt_ids, warmup_tokens)
            seconds = time.perf_counter() - started
            warm_up.setdefault(variant.name, seconds)  # the first round's: compiling is there
            print(f"warmed up {variant.name} in {seconds:.1f} s", file=sys.stderr, flush=True)
        for index, (label, prompt_ids) in enumerate(prompts):
            answered = []
            for unit in _units(variants, order):
                if len(unit) > 1 and all(variant.steps for variant in unit):
                    answered += zip(unit, run_lockstep(unit, prompt_ids, max_new_tokens))
                else:
                    answered += [(variant, variant(prompt_ids, max_new_tokens)) for variant in unit]
            for variant, outcome in answered:
                kept = outcomes.setdefault(variant.name, [None] * len(prompts))
                if kept[index] is not None and kept[index].tokens != outcome.tokens:
                    print(
                        f"{variant.name}: prompt {index + 1} decoded differently in round {round_ + 1}",
                        file=sys.stderr,
                    )
                if kept[index] is None or outcome.seconds < kept[index].seconds:
                    kept[index] = outcome
            print(
                f"round {round_ + 1}/{rounds}: prompt {index + 1}/{len(prompts)} "
                f"({label}, {len(prompt_ids)} tokens) done",
                file=sys.stderr,
            )
    return outcomes, warm_up


def _units(variants: list[Variant], order: random.Random) -> list[list[Variant]]:
    """``variants`` in a random order, each group (shuffled within) one unit, every other
    variant a unit of its own."""
    if all(variant.group is None for variant in variants):
        # One draw per prompt, as before groups existed: a seeded grid keeps the order of the
        # runs filed before (one-variant groups would draw more and reorder them).
        return [[variant] for variant in order.sample(variants, len(variants))]
    groups: dict[str, list[Variant]] = {}
    for variant in variants:
        groups.setdefault(variant.group or variant.name, []).append(variant)
    shuffled = order.sample(list(groups.values()), len(groups))
    return [order.sample(group, len(group)) for group in shuffled]


def run_lockstep(variants: list[Variant], prompt_ids: list[int], max_new_tokens: int) -> list[Outcome]:
    """Each of ``variants`` answers ``prompt_ids``, taking turns step by step; an answer's
    seconds are the sum of its own steps' (the prefill included), each timed from outside.

    Answered back to back, two variants doing identical work (AR and a copy of it) still
    differed by 2.7% over six 64-token prompts, the better of three rounds each, with a 95%
    interval that left out 1.0: this machine's speed changes within an answer. Taking turns
    every step (about 15 ms), both meet every change alike: AR and its copy, three 100-token
    answers each, differed by 0.5-1.2% answered one after the other and by 0.0-0.1% in
    lockstep, in the same process. What lockstep cannot share is a single slow step (about 1
    step in 70 here took 10-11 ms more, on either side). Who goes first alternates from step
    to step."""
    outcomes: list[Outcome | None] = [None] * len(variants)
    seconds = [0.0] * len(variants)
    with gc_paused(), torch.inference_mode():
        running = {i: variant.steps(prompt_ids, max_new_tokens) for i, variant in enumerate(variants)}
        turn = 0
        while running:
            order = list(running) if turn % 2 == 0 else list(reversed(running))
            for i in order:
                _sync(variants[i].target)
                start = time.perf_counter()
                try:
                    next(running[i])
                except StopIteration as done:
                    outcomes[i] = done.value
                    del running[i]
                _sync(variants[i].target)
                seconds[i] += time.perf_counter() - start
            turn += 1
    for outcome, spent in zip(outcomes, seconds):
        outcome.seconds = spent
    return outcomes


def rate(runs: list[Outcome]) -> float:
    return sum(len(run.tokens) for run in runs) / sum(run.seconds for run in runs)


def summarise(outcomes: dict[str, list[Outcome]], reference: str = "ar") -> dict[str, dict]:
    """Per variant: tokens/s, speedup over ``reference``, greedy equality with it, and for our
    engine MAT, nodes verified, time per phase and the budgets chosen."""
    ar_rate = rate(outcomes[reference])
    rows = {}
    for name, runs in outcomes.items():
        steps = sum(run.steps for run in runs)
        tokens_per_s = rate(runs)
        row = {
            "new_tokens": sum(len(run.tokens) for run in runs),
            "seconds": sum(run.seconds for run in runs),
            "tokens_per_s": tokens_per_s,
            "speedup_vs_ar": tokens_per_s / ar_rate,
            "equal_to_ar": sum(run.tokens == ref.tokens for run, ref in zip(runs, outcomes[reference])),
            "prompts": len(runs),
        }
        if steps:
            phases = {phase: sum(run.phase_times.get(phase, 0.0) for run in runs) for phase in PHASES}
            lengths = [n for run in runs for n in run.accept_lengths[1:]]  # the prefill step aside
            row.update(
                steps=steps,
                mean_accepted_tokens=sum(lengths) / len(lengths) if lengths else 1.0,
                mean_verified=sum(sum(run.proposed) for run in runs) / steps,
                phase_ms_per_step={phase: 1000 * seconds / steps for phase, seconds in phases.items()},
                overhead_ms_per_step=1000
                * (sum(phases.values()) - phases["forward"] - phases["prefill"])
                / steps,
                budgets=dict(sorted(Counter(b for run in runs for b in run.budgets[1:]).items())),
            )
        row["per_prompt"] = [{"new_tokens": len(run.tokens), "seconds": run.seconds} for run in runs]
        rows[name] = row
    return rows

"""The shared verifier: tree forwards score each node as sequential decoding would, the
cache keeps exactly the accepted path, greedy output equals AR, sampling is lossless."""

from __future__ import annotations

import gc

import pytest
import torch

from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.cache import TreeCache
from spec_bench.engine.decode import Engine
from spec_bench.engine.proposal import ROOT, NoDrafter, Proposal
from spec_bench.engine.verify import (
    accept_greedy,
    build_tree_inputs,
    greedy_tokens,
    tree_logits,
    tree_parents,
)

from .distribution import sampling_pvalues

PROMPT = "<|im_start|>user\nName three colours of the rainbow.<|im_end|>\n<|im_start|>assistant\n"


def sequential_logits(model, tokens: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([tokens])).logits[0, -1]


def node_path(proposal: Proposal, node: int, branch: bool = False) -> list[int]:
    tokens, parents = (
        (proposal.branch_tokens, proposal.branch_parents) if branch else (proposal.tokens, proposal.parents)
    )
    path = []
    while node != ROOT:
        path.append(tokens[node])
        node = parents[node]
    return path[::-1]


def sample_tree() -> Proposal:
    proposal = Proposal()
    proposal.add_path([11, 12, 13], "a", 64)
    proposal.add_path([11, 14], "b", 64)  # shares the first token with the path above
    proposal.add_path([15, 16], "c", 64)
    first = proposal.add_branch(21)
    second = proposal.add_branch(22, first)
    proposal.add_branch(23, second)
    proposal.add_branch(24, first)
    return proposal


def test_tree_parents_and_trie_merging():
    proposal = sample_tree()
    assert proposal.tokens == [11, 12, 13, 14, 15, 16]
    assert proposal.parents == [ROOT, 0, 1, 0, ROOT, 4]
    assert tree_parents(proposal) == [-1, 0, 1, 2, 1, 0, 5, 0, 7, 8, 7]
    assert proposal.add_path([11, 12, 99], "d", budget=len(proposal)) == 0  # budget full: nothing new


def test_tree_forward_matches_sequential_decoding(target):
    prompt = target.encode(PROMPT)
    proposal = sample_tree()
    cache = TreeCache()
    with torch.inference_mode():
        target.model(input_ids=torch.tensor([prompt[:-1]]), cache=cache, use_cache=True)
        inputs = build_tree_inputs(prompt[-1], proposal, len(prompt) - 1, target.device, target.dtype)
        logits = tree_logits(target.model, inputs, cache)[0]
    torch.testing.assert_close(logits[0], sequential_logits(target.model, prompt), atol=2e-4, rtol=1e-4)
    for node in range(proposal.n_drafts):
        expected = sequential_logits(target.model, prompt + node_path(proposal, node))
        torch.testing.assert_close(logits[1 + node], expected, atol=2e-4, rtol=1e-4)
    for node in range(len(proposal.branch_tokens)):
        expected = sequential_logits(target.model, prompt + node_path(proposal, node, branch=True))
        torch.testing.assert_close(logits[1 + proposal.n_drafts + node], expected, atol=2e-4, rtol=1e-4)

    # Keep the root and drafts 0 -> 1 (tokens 11, 12), then continue from token 13.
    past = len(prompt) - 1
    follow = Proposal()
    follow.add_path([7, 8], "x", 8)
    with torch.inference_mode():
        cache.keep(past, [past, past + 1, past + 2])
        assert cache.get_seq_length() == past + 3
        inputs = build_tree_inputs(13, follow, past + 3, target.device, target.dtype)
        logits = tree_logits(target.model, inputs, cache)[0]
    expected = sequential_logits(target.model, prompt + [11, 12, 13, 7])
    torch.testing.assert_close(logits[1], expected, atol=2e-4, rtol=1e-4)


class ScriptedDrafter:
    """Proposes the known continuation with wrong siblings mixed in: every step accepts
    several tokens, and wrong branches must leave no trace in the cache."""

    name = "scripted"

    def __init__(self, continuation: list[int]) -> None:
        self.continuation = continuation

    def reset(self, prompt_ids):
        self.prompt_length = len(prompt_ids)

    def propose(self, context, budget):
        done = len(context) - self.prompt_length
        proposal = Proposal()
        proposal.add_path([5, 6, 7], "wrong", budget)
        proposal.add_path(self.continuation[done : done + 4], "right", budget)
        proposal.add_path(self.continuation[done : done + 1] + [9, 9], "wrong", budget)
        if len(proposal) < budget:
            proposal.add_branch(3)
        return proposal

    def observe(self, step):
        pass


def test_greedy_engine_equals_transformers_generate(target):
    prompt = target.encode(PROMPT)
    with torch.inference_mode():
        expected = target.model.generate(torch.tensor([prompt]), max_new_tokens=40, do_sample=False)
    expected = expected[0, len(prompt) :].tolist()
    engine = Engine(target, 0.0, FixedBudget(16))
    assert engine.generate(prompt, NoDrafter(), 40).tokens == expected
    drafted = engine.generate(prompt, ScriptedDrafter(expected), 40)
    assert drafted.tokens == expected
    assert max(drafted.accept_lengths) == 5
    assert drafted.accepted_by_source.get("wrong", 0) == 0


@pytest.mark.parametrize("budget", [0, 1, 3, 16])
def test_budget_never_changes_greedy_output(target, budget):
    prompt = target.encode(PROMPT)
    reference = Engine(target, 0.0, FixedBudget(0)).generate(prompt, NoDrafter(), 24).tokens
    generation = Engine(target, 0.0, FixedBudget(budget)).generate(prompt, ScriptedDrafter(reference), 24)
    assert generation.tokens == reference
    assert all(proposed <= b for proposed, b in zip(generation.proposed, generation.budgets))


def test_stops_at_eos_and_token_limit(target):
    prompt = target.encode(PROMPT)
    engine = Engine(target, 0.0, FixedBudget(8))
    full = engine.generate(prompt, NoDrafter(), 200)
    assert full.stop_reason == "eos" and full.tokens[-1] in target.eos_token_ids
    # A drafter that proposes past EOS must not emit anything after it.
    assert engine.generate(prompt, ScriptedDrafter(full.tokens + [42, 42]), 200).tokens == full.tokens
    cut = engine.generate(prompt, ScriptedDrafter(full.tokens), 5)
    assert cut.tokens == full.tokens[:5] and cut.stop_reason == "max_new_tokens"


def test_prompt_longer_than_context_is_rejected(target):
    from spec_bench.errors import HarnessError

    with pytest.raises(HarnessError, match="context window"):
        Engine(target).generate([1] * target.context_window, NoDrafter(), 4)


# --- sampling: synthetic distributions, no model -------------------------------------

VOCAB = 6


def synthetic_case() -> tuple[torch.Tensor, Proposal]:
    """Root with three one-hot draft children (one of them likely, one unlikely, one
    nearly impossible) and a grandchild below the first."""
    proposal = Proposal()
    proposal.add_path([2, 3], "x", 16)
    proposal.add_path([4], "x", 16)
    proposal.add_path([5], "x", 16)
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn((1 + proposal.n_drafts, VOCAB), generator=generator) * 1.5
    logits[0, 5] = -6.0
    return logits, proposal


def biased_accept(logits, proposal, temperature, generator):
    """A plausible-looking but wrong rule: accept a draft with probability p(c), and on
    rejection sample the bonus from the unmodified p (no residual)."""
    from spec_bench.engine.verify import Acceptance

    probs = torch.softmax(logits[0] / temperature, -1)
    for index, (token, parent) in enumerate(zip(proposal.tokens, proposal.parents)):
        if parent == ROOT and float(torch.rand((), generator=generator)) < float(probs[token]):
            return Acceptance(
                [index],
                int(torch.multinomial(torch.softmax(logits[index + 1], -1), 1, generator=generator)),
                [],
            )
    return Acceptance([], int(torch.multinomial(probs, 1, generator=generator)), [])


def test_rejection_sampling_keeps_target_distribution():
    logits, proposal = synthetic_case()
    first_p, second_p = sampling_pvalues(proposal, logits)
    assert first_p > 1e-3 and second_p > 1e-3


def test_distribution_test_catches_a_biased_rule():
    logits, proposal = synthetic_case()
    first_p, _ = sampling_pvalues(proposal, logits, rule=biased_accept)
    assert first_p < 1e-6


def test_an_answer_decoded_step_by_step_is_the_same_and_leaves_out_time_between_steps(target):
    """``Engine.steps`` (a benchmark interleaving two answers) decodes what ``generate`` does,
    and charges neither its phases nor its wall time with the time spent between steps."""
    import time

    prompt = target.encode(PROMPT)
    reference = Engine(target, 0.0, FixedBudget(0)).generate(prompt, NoDrafter(), 12).tokens
    whole = Engine(target, 0.0, FixedBudget(4)).generate(prompt, ScriptedDrafter(reference), 12)
    assert max(whole.accept_lengths) > 1  # it drafted, and drafts were accepted

    pause = 0.05
    started = time.perf_counter()
    with torch.inference_mode():
        steps = Engine(target, 0.0, FixedBudget(4)).steps(prompt, ScriptedDrafter(reference), 12)
        yields = 0
        while True:
            try:
                next(steps)
            except StopIteration as done:
                stepped = done.value
                break
            yields += 1
            time.sleep(pause)
    elapsed = time.perf_counter() - started
    assert (stepped.tokens, stepped.accept_lengths, stepped.proposed) == (
        whole.tokens,
        whole.accept_lengths,
        whole.proposed,
    )
    assert yields == stepped.steps  # one after the prefill and one after every step but the last
    assert stepped.wall_time_s < elapsed - pause * yields * 0.9
    assert sum(stepped.phase_times.values()) <= stepped.wall_time_s * 1.01


def test_sampling_engine_is_seeded(target):
    prompt = target.encode(PROMPT)
    engine = Engine(target, 1.0, FixedBudget(8))
    a = engine.generate(prompt, NoDrafter(), 16, seed=7).tokens
    b = engine.generate(prompt, NoDrafter(), 16, seed=7).tokens
    assert a == b


def test_greedy_accept_walks_longest_matching_path():
    proposal = Proposal()
    proposal.add_path([1, 2, 3], "a", 16)
    proposal.add_path([1, 4], "b", 16)
    logits = torch.full((1 + proposal.n_drafts, 8), -1.0)
    # root predicts 1; node(1) predicts 4; node(4) predicts 7 -> accept [1, 4], bonus 7
    logits[0, 1] = logits[1, 4] = logits[4, 7] = 5.0
    logits[2, 0] = logits[3, 0] = 5.0
    acceptance = accept_greedy(logits, proposal)
    assert [proposal.tokens[n] for n in acceptance.accepted_nodes] == [1, 4]
    assert acceptance.bonus_token == 7


class CollectorWatch(NoDrafter):
    """AR that notes whether Python's garbage collector was on at each step."""

    def __init__(self) -> None:
        super().__init__()
        self.collector_on: list[bool] = []

    def propose(self, context: list[int], budget: int) -> Proposal:
        self.collector_on.append(gc.isenabled())
        return Proposal()


def test_no_garbage_collector_pass_is_timed_inside_an_answer(target):
    """A full pass over a benchmark's objects took up to seconds, billed to whichever answer
    happened to allocate then: the collector is off while an answer is decoded, as before after."""
    watch = CollectorWatch()
    assert gc.isenabled()
    generation = Engine(target, 0.0, FixedBudget(0)).generate(target.encode("Hello"), watch, 4)
    assert generation.steps > 1 and watch.collector_on and not any(watch.collector_on)
    assert gc.isenabled()
    gc.disable()
    try:  # a caller's own setting is left alone
        Engine(target, 0.0, FixedBudget(0)).generate(target.encode("Hello"), CollectorWatch(), 2)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_greedy_tokens_pick_what_argmax_picks_in_the_logits_dtype(dtype):
    """Half-precision logits are widened before the argmax (it is ~20x faster on a CPU);
    the tokens must be the ones argmax picks in the logits' own dtype, ties to the first."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 4096, generator=generator).to(dtype)
    logits[:, [7, 100, 4000]] = 9.0  # a three-way tie for the maximum: the first one wins
    logits[3, 7] = 8.0  # ... except where the first of them is lower
    logits[8:] = logits[8:].round()  # rows full of ties
    tokens = greedy_tokens(logits)
    assert tokens.dtype == torch.int64
    assert torch.equal(tokens, logits.argmax(dim=-1))
    assert tokens[0] == 7 and tokens[3] == 100

"""The one tree verifier every drafter shares.

A step feeds ``[root] + draft trie + branch tree`` in one forward pass. ``root`` is the
last accepted token (not yet in the KV cache). Every node sees the cached prefix, the root
and its own ancestors, and sits at position ``root_position + depth``, so each draft path
is scored exactly as if it had been decoded on its own.

Acceptance walks down the trie from the root:
- greedy: follow the child equal to the argmax; the first miss gives the bonus token;
- sampling: recursive rejection over the children, each a one-hot draft: accept child
  ``c`` with probability ``p(c)``, else zero ``p(c)`` and renormalise; when all children are
  rejected, the bonus token is sampled from what is left. Every emitted token is thus
  distributed exactly as the target model's own sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spec_bench.engine.proposal import ROOT, Proposal
from spec_bench.models import fused_ops


@dataclass
class TreeInputs:
    """Tensors for one verification forward (node 0 is the root)."""

    input_ids: torch.Tensor  # (1, n)
    position_ids: torch.Tensor  # (1, n)
    attention_mask: torch.Tensor  # (1, 1, n, past + n), additive: 0 = visible
    n_drafts: int


def tree_logits(model, inputs: TreeInputs, cache) -> torch.Tensor:
    """One verification forward, (1, n, vocab): the tree's tokens at their positions, under its
    mask, on ``cache``. The engine, the cost curve and the tests call this one forward, so the
    curve times exactly what decoding runs."""
    return model(
        input_ids=inputs.input_ids,
        position_ids=inputs.position_ids,
        attention_mask=inputs.attention_mask,
        cache=cache,
        use_cache=True,
    ).logits


def tree_parents(proposal: Proposal) -> list[int]:
    """Parents in node space (root = 0, drafts 1..D, branch D+1..); the root has -1."""
    n_drafts = proposal.n_drafts
    parents = [-1]
    parents += [0 if p == ROOT else p + 1 for p in proposal.parents]
    parents += [0 if p == ROOT else p + 1 + n_drafts for p in proposal.branch_parents]
    return parents


class TreeInputBuilder:
    """Builds each step's verification inputs, reusing one mask buffer across steps.

    The mask is additive, ``(1, 1, n, past + n)``: the prefix columns are all visible and
    only the last ``n`` columns (the tree) carry a pattern. It is a contiguous view of a
    buffer that only grows, so steps do not allocate it again (a mask is valid until the
    next ``build``); token ids and positions go to the device together in one copy.
    """

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.hidden = torch.finfo(dtype).min
        self._mask_buffer = torch.zeros(0, dtype=dtype, device=self.device)

    def build(self, root_token: int, proposal: Proposal, past_length: int) -> TreeInputs:
        parents = tree_parents(proposal)
        n = len(parents)
        # Each node sees its ancestors and itself; parents come before children.
        depths = [0] * n
        ancestors: list[list[int]] = [[0]]
        rows, cols = [0], [0]
        for node in range(1, n):
            parent = parents[node]
            depths[node] = depths[parent] + 1
            seen = [*ancestors[parent], node]
            ancestors.append(seen)
            rows += [node] * len(seen)
            cols += seen

        mask = self._mask(n, past_length + n)
        mask[..., :past_length].zero_()
        if n == 1:
            mask[..., past_length:].zero_()
        else:
            tree_block = torch.full((n, n), self.hidden, dtype=self.dtype)
            tree_block[rows, cols] = 0.0
            mask[0, 0, :, past_length:].copy_(tree_block)

        tokens = [root_token, *proposal.tokens, *proposal.branch_tokens]
        positions = [past_length + depth for depth in depths]
        ids_and_positions = torch.tensor([tokens, positions]).to(self.device)
        return TreeInputs(
            input_ids=ids_and_positions[0:1],
            position_ids=ids_and_positions[1:2],
            attention_mask=mask,
            n_drafts=proposal.n_drafts,
        )

    def _mask(self, rows: int, cols: int) -> torch.Tensor:
        needed = rows * cols
        if self._mask_buffer.numel() < needed:
            self._mask_buffer = torch.empty(2 * needed, dtype=self.dtype, device=self.device)
        return self._mask_buffer[:needed].view(1, 1, rows, cols)


def build_tree_inputs(
    root_token: int, proposal: Proposal, past_length: int, device: torch.device, dtype: torch.dtype
) -> TreeInputs:
    """One-off inputs (the engine keeps a ``TreeInputBuilder`` instead)."""
    return TreeInputBuilder(device, dtype).build(root_token, proposal, past_length)


@dataclass
class Acceptance:
    """What the walk down the trie decided: accepted draft nodes (trie indices), the
    bonus token, and the model's greedy predictions after each branch node."""

    accepted_nodes: list[int]
    bonus_token: int
    branch_predictions: list[int]


def greedy_tokens(logits: torch.Tensor) -> torch.Tensor:
    """The argmax over the last dimension, the first of equal maxima. On a CPU, half-precision
    logits are widened to fp32 first: the CPU's argmax over bf16 runs some 20x slower than over
    fp32 (a 16 x 49152 block: 8 ms against 0.4 ms with the conversion), which billed a 16-token
    verification several milliseconds that AR's one row did not pay. Where our AVX-512 kernel
    is built (``fused_ops.argmax``) bf16 rows are read in place: 57 against 419 us for that
    block, 8.5 against 57 us for one row. Every path returns the same tokens."""
    if logits.device.type == "cpu" and logits.dtype in (torch.bfloat16, torch.float16):
        tokens = fused_ops.argmax(logits)
        if tokens is not None:
            return tokens
        logits = logits.float()
    return logits.argmax(dim=-1)


def accept_greedy(logits: torch.Tensor, proposal: Proposal) -> Acceptance:
    """``logits``: (n, vocab) for root, drafts, branch nodes in that order."""
    predictions = greedy_tokens(logits).tolist()  # the one host sync of the step
    accepted, node, parent = [], 0, ROOT
    cap = proposal.max_accepted
    while cap is None or len(accepted) < cap:
        token = predictions[node]
        child = proposal.child(parent, token)
        if child is None:
            break
        accepted.append(child)
        node, parent = child + 1, child
    return Acceptance(accepted, predictions[node], predictions[1 + proposal.n_drafts :])


def accept_sampling(
    logits: torch.Tensor, proposal: Proposal, temperature: float, generator: torch.Generator
) -> Acceptance:
    children = _children_by_parent(proposal)
    accepted, node, parent = [], 0, ROOT
    cap = proposal.max_accepted
    while True:
        # On the host: acceptance is a chain of tiny scalar decisions, and the generator
        # (seeded per question) must not depend on the device.
        probs = torch.softmax(logits[node].float().cpu() / temperature, dim=-1)
        chosen = None
        # Past the cap nothing is drafted: the bonus is a plain sample there (still exact).
        candidates = children.get(parent, ()) if cap is None or len(accepted) < cap else ()
        for token, child in candidates:
            p_token = float(probs[token])
            if p_token > 0 and float(torch.rand((), generator=generator)) < p_token:
                chosen = child
                break
            probs[token] = 0.0
            probs /= probs.sum()
        if chosen is None:
            bonus = int(torch.multinomial(probs, 1, generator=generator))
            break
        accepted.append(chosen)
        node, parent = chosen + 1, chosen
    branch_predictions = []
    if proposal.branch_tokens:
        branch_predictions = greedy_tokens(logits[1 + proposal.n_drafts :]).tolist()
    return Acceptance(accepted, bonus, branch_predictions)


def _children_by_parent(proposal: Proposal) -> dict[int, list[tuple[int, int]]]:
    children: dict[int, list[tuple[int, int]]] = {}
    for index, (token, parent) in enumerate(zip(proposal.tokens, proposal.parents)):
        children.setdefault(parent, []).append((token, index))
    return children

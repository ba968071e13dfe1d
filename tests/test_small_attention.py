"""Our AVX-512 BF16 attention for a step's few queries: the exact attention up to bf16
rounding (no further from it than PyTorch's kernel), every mask form a model passes, grouped
heads read in place, other calls left to the previous attention, chosen by measurement."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from spec_bench.engine.cost import _FreshShapeForwards
from spec_bench.engine.verify import tree_logits
from spec_bench.models import small_attention

CPU = torch.device("cpu")
BF16 = torch.bfloat16

needs_kernel = pytest.mark.skipif(
    not small_attention.available(CPU, BF16), reason="no AVX-512 BF16 here, or the kernel did not build"
)


def _inputs(queries, keys, size, mask_kind, heads=9, kv_heads=3, seed=0):
    """Queries as the model passes them (a transposed view), keys and values as views into a
    cache with room to spare, and a tree-shaped mask over the newest ``queries`` keys."""
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(1, queries, heads, size, generator=generator).to(BF16).transpose(1, 2)
    cache_k = torch.randn(1, kv_heads, keys + 37, size, generator=generator).to(BF16)
    cache_v = torch.randn(1, kv_heads, keys + 37, size, generator=generator).to(BF16)
    visible = torch.ones(queries, keys, dtype=torch.bool)
    tree = (torch.rand(queries, queries, generator=generator) < 0.5).tril() | torch.eye(
        queries, dtype=torch.bool
    )
    visible[:, keys - queries :] = tree
    mask = {
        "none": None,
        "bool": visible[None, None],
        "bf16": torch.zeros(1, 1, queries, keys, dtype=BF16).masked_fill(~visible, torch.finfo(BF16).min),
        "float": torch.zeros(1, 1, queries, keys).masked_fill(~visible, float("-inf")),
    }[mask_kind]
    return query, cache_k[:, :, :keys], cache_v[:, :, :keys], mask, visible


@needs_kernel
@pytest.mark.parametrize(
    "queries,keys,size,mask_kind",
    [(1, 316, 64, "none"), (1, 40, 64, "bf16"), (5, 37, 64, "bf16"), (16, 316, 64, "bf16"),
     (16, 300, 64, "bool"), (13, 200, 64, "float"), (3, 17, 128, "bf16"), (16, 500, 128, "bool"),
     (64, 90, 64, "bf16")],
)  # fmt: skip
def test_it_is_the_exact_attention_up_to_bf16_rounding(queries, keys, size, mask_kind):
    query, key, value, mask, visible = _inputs(queries, keys, size, mask_kind, seed=queries + keys)
    scale = size**-0.5
    groups = query.shape[1] // key.shape[1]
    exact = F.scaled_dot_product_attention(
        query.float(),
        key.float().repeat_interleave(groups, 1),
        value.float().repeat_interleave(groups, 1),
        attn_mask=visible[None, None],
        scale=scale,
    ).transpose(1, 2)
    theirs = F.scaled_dot_product_attention(
        query, key, value, attn_mask=visible[None, None], scale=scale, enable_gqa=True
    )
    with torch.inference_mode():
        ours = small_attention._load().attention(query, key, value, mask, scale)
    assert ours.shape == (1, queries, query.shape[1], size) and ours.dtype == BF16
    our_error = (ours.float() - exact).abs().max().item()
    their_error = (theirs.transpose(1, 2).float() - exact).abs().max().item()
    assert our_error <= max(1.5 * their_error, 1e-2)


def test_it_takes_only_calls_it_computes_as_asked():
    query, key, _, mask, _ = _inputs(4, 50, 64, "bf16")
    assert small_attention.takes(query, key, mask, 0.0, {})
    assert not small_attention.takes(query, key, None, 0.0, {})  # several queries need a mask
    assert not small_attention.takes(query, key, mask, 0.1, {})  # dropout
    assert not small_attention.takes(query, key, mask, 0.0, {"softcap": 30.0})
    assert not small_attention.takes(query.float(), key, mask, 0.0, {})
    assert not small_attention.takes(query.expand(2, -1, -1, -1), key, mask, 0.0, {})  # a batch
    many, many_key, _, many_mask, _ = _inputs(small_attention.MAX_QUERIES + 1, 100, 64, "bf16")
    assert not small_attention.takes(many, many_key, many_mask, 0.0, {})  # a prompt
    one, one_key, _, _, _ = _inputs(1, 50, 64, "none")
    assert small_attention.takes(one, one_key, None, 0.0, {})


@needs_kernel
def test_the_embedded_model_verifies_a_tree_alike_with_either_attention(bf16_target):
    """A 16-token tree forward after 300 cached tokens: logits within bf16 rounding of each
    other, the same greedy tokens wherever the model is not at a near-tie."""
    model = bf16_target.model
    before = model.config._attn_implementation
    logits = {}
    try:
        with torch.inference_mode():
            forwards = _FreshShapeForwards(model, CPU, [16], 2, 300)
            inputs = forwards.builder.build(0, forwards.trees[16], forwards.past)
            for ours in (True, False):
                small_attention.use(model, ours)
                forwards.cache.keep(forwards.past, [])
                logits[ours] = tree_logits(model, inputs, forwards.cache).float()
    finally:
        model.config._attn_implementation = before
    theirs = logits[False]
    assert (logits[True] - theirs).abs().max() < 0.05 * theirs.abs().max()
    top2 = theirs.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 0.5
    assert clear.sum() >= 8
    assert torch.equal(logits[True].argmax(-1)[clear], theirs.argmax(-1)[clear])


@needs_kernel
def test_auto_measures_once_and_calls_it_does_not_take_reach_the_previous_attention(
    bf16_target, tmp_path, monkeypatch
):
    model = bf16_target.model
    before = model.config._attn_implementation
    fallback = before.removeprefix("small_attention_over_")
    cache = tmp_path / "choice.json"
    try:
        small_attention.use(model, False)
        first = small_attention.choose("auto", model, CPU, cache)
        record = json.loads(cache.read_text())
        assert record["small_attention"] == first and record["sdpa_s"] > 0 and record["small_attention_s"] > 0
        assert model.config._attn_implementation == (
            small_attention.name_over(fallback) if first else fallback
        )

        def must_not_time(*args, **kwargs):
            raise AssertionError("timed again despite a cached choice")

        monkeypatch.setattr("spec_bench.engine.cost.compare_forwards", must_not_time)
        assert small_attention.choose("auto", model, CPU, cache) == first
        assert small_attention.choose(False, model, CPU, cache) is False
        assert model.config._attn_implementation == fallback
        assert small_attention.choose(True, model, CPU, cache) is True
        assert model.config._attn_implementation == small_attention.name_over(fallback)
        # A prompt (more queries than a step has) goes to the previous attention.
        calls = []
        from transformers import AttentionInterface

        original = AttentionInterface()[fallback]
        monkeypatch.setitem(
            AttentionInterface._global_mapping, fallback, lambda *a, **k: calls.append(1) or original(*a, **k)
        )
        ids = torch.randint(100, 1000, (1, small_attention.MAX_QUERIES + 8))
        with torch.inference_mode():
            model(input_ids=ids)
        assert len(calls) == model.config.num_hidden_layers
    finally:
        model.config._attn_implementation = before

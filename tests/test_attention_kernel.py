"""The GPU attention kernel is chosen by measurement at fresh shapes; CPUs have nothing to choose.
Grouped key/value heads go to SDPA uncopied in tree forwards, with results equal bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from spec_bench.engine.cache import TreeCache
from spec_bench.models import attention_kernel, grouped_attention, kernel_choice


def test_a_cpu_has_no_cudnn_attention_to_choose(target, tmp_path):
    cache = tmp_path / "attention.json"
    for setting in ("auto", True, False):
        assert attention_kernel.choose(setting, target.model, torch.device("cpu"), cache) is None
    assert not cache.exists()
    if target.device.type == "cpu":
        assert "no-cudnn-attention" not in target.kernels


def test_the_cached_choice_is_read_back_and_a_broken_cache_is_measured_again(tmp_path):
    cache = tmp_path / "attention.json"
    measured = []

    def measure() -> dict:
        measured.append(1)
        return {"cudnn_attention": False, "with_cudnn_s": 0.06, "without_s": 0.02}

    assert kernel_choice.cached_or_measured("cudnn_attention", cache, measure) is False
    assert kernel_choice.cached_or_measured("cudnn_attention", cache, measure) is False
    assert len(measured) == 1 and json.loads(cache.read_text())["without_s"] == 0.02
    cache.write_text("{not json")
    assert kernel_choice.cached_or_measured("cudnn_attention", cache, measure) is False
    assert len(measured) == 2


def test_each_model_sets_its_own_cudnn_choice_before_its_forwards(target):
    """The switch is process-wide; two models with different choices each get theirs (on an
    H200 the fp32 copy's choice re-enabled cuDNN under the bf16 target)."""
    other = torch.nn.Linear(4, 4)
    was = torch.backends.cuda.cudnn_sdp_enabled()
    seen = []
    record = target.model.register_forward_hook(
        lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled())
    )
    try:
        attention_kernel.follow(target.model, False)
        attention_kernel.follow(other, True)
        assert torch.backends.cuda.cudnn_sdp_enabled()  # the last choice made is in force
        with torch.no_grad():
            target.model(input_ids=torch.tensor([[1, 2, 3]], device=target.device))
            assert seen == [False]
            other(torch.zeros(1, 4))
            assert torch.backends.cuda.cudnn_sdp_enabled()
            attention_kernel.follow(target.model, True)  # a new choice replaces the old hook
            target.model(input_ids=torch.tensor([[1, 2, 3]], device=target.device))
        assert seen == [False, True]
        assert attention_kernel.unfollow(target.model) is True
        assert attention_kernel.unfollow(target.model) is None
    finally:
        record.remove()
        attention_kernel.unfollow(target.model)
        torch.backends.cuda.enable_cudnn_sdp(was)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="cuDNN attention needs a CUDA GPU")
def test_on_a_gpu_both_settings_are_timed_and_the_choice_is_applied(tmp_path):
    from spec_bench.commands import compose_config
    from spec_bench.models import load_target

    cfg = compose_config([f"cache_dir={tmp_path}", "model.device=cuda"])
    target = load_target(cfg.model, cfg.cache_dir)
    with_cudnn, without = attention_kernel.time_fresh_shapes(target.model, target.device)
    assert with_cudnn > 0 and without > 0
    (cache,) = (tmp_path / "kernels").glob("*-attention.json")
    chosen = json.loads(cache.read_text())["cudnn_attention"]
    torch.backends.cuda.enable_cudnn_sdp(not chosen)  # as another model's choice would
    with torch.no_grad():
        target.model(input_ids=torch.tensor([[1, 2, 3]], device=target.device))
    assert torch.backends.cuda.cudnn_sdp_enabled() == chosen
    assert ("no-cudnn-attention" in target.kernels) == (not chosen)


class _Attention(torch.nn.Module):
    num_key_value_groups = 3
    is_causal = True


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("queries", [1, 2, 16])
def test_grouped_heads_give_the_copied_heads_result_bit_for_bit(dtype, queries):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    generator = torch.Generator().manual_seed(queries)
    past = 300 + queries
    query = torch.randn(1, 9, queries, 64, generator=generator).to(dtype)
    key, value = (torch.randn(1, 3, past, 64, generator=generator).to(dtype) for _ in range(2))
    mask = torch.zeros(1, 1, queries, past, dtype=dtype)
    mask[..., -queries:] = torch.finfo(dtype).min  # a tree: each node sees the prefix and itself
    mask[..., -queries:].diagonal(dim1=-2, dim2=-1).zero_()
    module = _Attention()
    copied, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.125)
    grouped, _ = grouped_attention.grouped_sdpa(module, query, key, value, mask, scaling=0.125)
    assert copied.shape == grouped.shape == (1, queries, 9, 64)
    assert torch.equal(copied, grouped)


def test_a_tree_forward_of_the_model_is_the_same_with_grouped_heads(target):
    from spec_bench.engine.cost import _tree
    from spec_bench.engine.verify import build_tree_inputs, tree_logits

    model = target.model
    assert grouped_attention.applicable(model)  # SmolLM2: 9 query heads over 3 key/value heads
    before = model.config._attn_implementation
    prompt = torch.tensor([target.encode("Name three colours of the rainbow, then three more.")])
    tree = _tree(15, int(model.config.vocab_size), torch.Generator().manual_seed(0))
    inputs = build_tree_inputs(prompt[0, -1].item(), tree, prompt.shape[1] - 1, target.device, target.dtype)
    logits = {}
    try:
        for grouped in (False, True):
            grouped_attention.use(model, grouped)
            cache = TreeCache()
            with torch.inference_mode():
                model(input_ids=prompt[:, :-1], cache=cache, use_cache=True)
                logits[grouped] = tree_logits(model, inputs, cache)
    finally:
        model.config._attn_implementation = before
    assert logits[True].shape[1] == 16
    assert torch.equal(logits[False], logits[True])

"""Llama norms, the MLP activation, the rotary embedding and the greedy argmax as one C++
call each: the same values as transformers' and PyTorch's code, on any row count, chosen by
measurement."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.models.llama import modeling_llama
from transformers.models.llama.modeling_llama import LlamaRMSNorm, LlamaRotaryEmbedding

from spec_bench.engine.verify import greedy_tokens
from spec_bench.models import fused_ops

CPU = torch.device("cpu")
BF16 = torch.bfloat16

needs_kernel = pytest.mark.skipif(
    not fused_ops.available(CPU, BF16), reason="no AVX-512 BF16 here, or the kernel did not build"
)


@needs_kernel
@pytest.mark.parametrize("rows,features", [(1, 576), (16, 576), (300, 576), (5, 100)])
def test_the_norm_is_transformers_norm_bit_for_bit(rows, features):
    torch.manual_seed(rows)
    norm = LlamaRMSNorm(features, eps=1e-5).to(BF16)
    norm.weight.data = torch.randn(features).to(BF16)
    x = (3 * torch.randn(1, rows, features)).to(BF16)
    with torch.inference_mode():
        ours = fused_ops._load().rms_norm(x, norm.weight, 1e-5)
        assert torch.equal(ours, norm(x))


@needs_kernel
@pytest.mark.parametrize("rows,width", [(1, 1536), (16, 1536), (3, 40)])
def test_the_activation_is_silu_times_up_as_pytorch_rounds_it(rows, width):
    """On the halves of one fused product (strided views), as the MLP gets them."""
    torch.manual_seed(width)
    gate, up = (4 * torch.randn(1, rows, 2 * width)).to(BF16).split(width, dim=-1)
    with torch.inference_mode():
        ours = fused_ops._load().silu_mul(gate, up)
        theirs = F.silu(gate) * up
    assert ours.shape == theirs.shape
    # Another exp polynomial than PyTorch's: a rare last-bit difference before the rounding.
    ulp = torch.finfo(BF16).eps * theirs.float().abs().clamp_min(1e-6)
    assert ((ours.float() - theirs.float()).abs() <= ulp).all()
    assert (ours == theirs).float().mean() > 0.999


@needs_kernel
@pytest.mark.parametrize(
    "tokens,heads,head_size,batch", [(1, 9, 64, 1), (16, 3, 64, 1), (5, 4, 128, 2), (7, 2, 40, 1)]
)
def test_the_rotation_is_transformers_rotary_embedding_bit_for_bit(tokens, heads, head_size, batch):
    """On q and k as the attention gets them: head views of one fused projection's output."""
    torch.manual_seed(tokens)
    config = LlamaConfig(hidden_size=heads * head_size, num_attention_heads=heads, head_dim=head_size)
    rotary = LlamaRotaryEmbedding(config)
    width = heads * head_size
    projected = (3 * torch.randn(batch, tokens, 3 * width)).to(BF16)
    q, k = (
        projected[..., i * width : (i + 1) * width].view(batch, tokens, heads, head_size).transpose(1, 2)
        for i in (0, 1)
    )
    positions = torch.arange(300, 300 + tokens).expand(batch, tokens)
    with torch.inference_mode():
        cos, sin = rotary(projected, positions)
        ours = fused_ops._load().rotary(q, k, cos, sin)
        theirs = modeling_llama.apply_rotary_pos_emb(q, k, cos, sin)  # unmarked: transformers' own
    for mine, its in zip(ours, theirs, strict=True):
        assert torch.equal(mine, its) and mine.transpose(1, 2).is_contiguous()  # stored [B, T, H, D]


@needs_kernel
def test_the_argmax_is_torchs_first_of_equal_maxima():
    torch.manual_seed(0)
    logits = torch.randn(1, 16, 49152).to(BF16)
    logits[0, 3, 100] = logits[0, 3, 2000] = 50.0  # a tie: the first wins
    logits[0, 5] = 1.0  # all equal: index 0
    logits[0, 7, -1] = 60.0  # in the last vector
    odd = torch.randn(7, 37).to(BF16)  # a tail shorter than a vector
    for case in (logits, logits[:, :1], logits[0, ::2], odd):
        assert torch.equal(fused_ops.argmax(case), case.float().argmax(-1))
        assert torch.equal(greedy_tokens(case), case.float().argmax(-1))
    assert fused_ops.argmax(logits)[0, 3] == 100 and fused_ops.argmax(logits)[0, 7] == 49151
    assert fused_ops.argmax(logits.float()) is None  # fp32 keeps PyTorch's


@needs_kernel
def test_the_embedded_model_runs_its_norms_mlps_and_rotations_on_ours_with_equal_tokens(
    bf16_target, monkeypatch
):
    model = bf16_target.model
    before = "fused-ops" in bf16_target.kernels
    ids = torch.tensor([bf16_target.encode("The capital of France is Paris. The capital of Italy is")])
    extension, rotations = fused_ops._load(), []

    class Counting:  # the extension, counting its rotary calls
        def __getattr__(self, name):
            return getattr(extension, name)

        def rotary(self, *args):
            rotations.append(args[0].shape)
            return extension.rotary(*args)

    monkeypatch.setattr(fused_ops, "_load", Counting)
    try:
        with torch.inference_mode():
            routed = fused_ops.use(model, True)
            ours = model(input_ids=ids).logits.float()
            routed_rotations = len(rotations)
            fused_ops.use(model, False)
            assert not any("forward" in vars(module) for module, _ in fused_ops._targets(model))
            theirs = model(input_ids=ids).logits.float()
    finally:
        fused_ops.use(model, before)
    config = model.config
    # Norms, MLPs and the one rotary embedding; every layer's rotation on ours, and none after.
    assert routed == 2 * config.num_hidden_layers + 1 + config.num_hidden_layers + 1
    assert routed_rotations == len(rotations) == config.num_hidden_layers
    assert (ours - theirs).abs().max() < 0.05 * theirs.abs().max()
    top2 = theirs.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 0.5
    assert clear.sum() >= ids.shape[1] // 2
    assert torch.equal(ours.argmax(-1)[clear], theirs.argmax(-1)[clear])


@needs_kernel
def test_auto_measures_once_and_reads_the_choice_back(bf16_target, tmp_path, monkeypatch):
    model = bf16_target.model
    before = "fused-ops" in bf16_target.kernels
    cache = tmp_path / "choice.json"
    try:
        first = fused_ops.choose("auto", model, CPU, cache)
        record = json.loads(cache.read_text())
        assert record["fused_ops"] == first and record["transformers_s"] > 0 and record["fused_s"] > 0

        def must_not_time(*args, **kwargs):
            raise AssertionError("timed again despite a cached choice")

        monkeypatch.setattr("spec_bench.engine.cost.compare_forwards", must_not_time)
        assert fused_ops.choose("auto", model, CPU, cache) == first
        assert fused_ops.choose(False, model, CPU, cache) is False
        assert not any(vars(module).get(fused_ops.MARK) for module, _ in fused_ops._targets(model))
        assert fused_ops.choose(True, model, CPU, cache) is True
        assert all(vars(module).get(fused_ops.MARK) for module, _ in fused_ops._targets(model))
    finally:
        fused_ops.use(model, before)

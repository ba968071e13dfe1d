"""Our AVX-512 BF16 kernel for the few rows of a decoding step: the same map as the layer
(each output one fp32 dot product rounded to bf16 once), any number of rows, fallback to
oneDNN for shapes it does not take, chosen by measurement and cached."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from spec_bench.models import packed_linear, small_gemm

CPU = torch.device("cpu")
BF16 = torch.bfloat16

needs_kernel = pytest.mark.skipif(
    not small_gemm.available(CPU, BF16), reason="no AVX-512 BF16 here, or the kernel did not build"
)


def test_offered_only_for_bf16_on_a_cpu_that_has_it():
    assert not small_gemm.available(CPU, torch.float32)
    assert not small_gemm.available(torch.device("cuda"), BF16)
    assert small_gemm.fits(torch.empty(48, 64, dtype=BF16))
    assert not small_gemm.fits(torch.empty(40, 64, dtype=BF16))  # columns come in blocks of 16
    assert not small_gemm.fits(torch.empty(48, 63, dtype=BF16))  # inputs come in pairs
    assert not small_gemm.fits(torch.empty(48, 64))


@needs_kernel
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 6, 7, 8, 9, 13, 15, 16, 17])
def test_each_output_is_the_fp32_dot_product_rounded_once(rows):
    """Balanced passes of 1 to 8 rows cover any count; every entry equals the exact product's
    bf16 rounding up to one unit in the last place (fp32 sums in another order)."""
    torch.manual_seed(rows)
    weight = torch.randn(96, 576, dtype=BF16)
    bias = torch.randn(96, dtype=BF16)
    x = torch.randn(1, rows, 576, dtype=BF16)
    with torch.inference_mode():
        got = small_gemm.product(x, small_gemm.pack(weight), None)
        exact = x.float() @ weight.float().T
        assert got.shape == (1, rows, 96) and got.dtype == BF16
        ulp = torch.finfo(BF16).eps * exact.abs().clamp_min(1e-3)
        assert ((got.float() - exact).abs() <= ulp).all()
        with_bias = small_gemm.product(x, small_gemm.pack(weight), bias)
        torch.testing.assert_close(with_bias, F.linear(x, weight, bias), rtol=1.6e-2, atol=2e-2)


@needs_kernel
def test_packing_for_the_kernel_switches_back_and_forth_and_leaves_odd_shapes_on_onednn():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Linear(96, 40)).to(BF16)
    x = torch.randn(1, 5, 64, dtype=BF16)
    with torch.inference_mode():
        expected = model(x)
        packed_linear.use_packed_linear(model, small_gemm.kernel())
        assert model[0].packed_kernel is small_gemm.kernel()
        assert model[1].packed_kernel is packed_linear.ONEDNN  # 40 columns: not in blocks of 16
        assert packed_linear.packed_kernels(model) == {"small-gemm", "onednn"}
        torch.testing.assert_close(model(x), expected, rtol=1.6e-2, atol=2e-2)
        packed_linear.use_packed_linear(model)
        assert packed_linear.packed_kernels(model) == {"onednn"}
        packed_linear.use_plain_linear(model)
        assert packed_linear.packed_kernels(model) == set()
        assert torch.equal(model(x), expected)


@needs_kernel
def test_the_embedded_model_computes_the_same_logits_on_either_kernel(bf16_target):
    """Whole bf16 forwards: our kernel and oneDNN's agree up to bf16 rounding, and on the
    next token wherever the model is not at a near-tie."""
    model = bf16_target.model
    ids = torch.tensor([bf16_target.encode("The capital of France is Paris. The capital of Italy is")])
    before = bf16_target.kernels
    try:
        with torch.inference_mode():
            packed_linear.use_packed_linear(model, small_gemm.kernel())
            ours = model(input_ids=ids).logits.float()
            packed_linear.use_packed_linear(model)
            theirs = model(input_ids=ids).logits.float()
    finally:
        if "small-gemm" in before:
            packed_linear.use_packed_linear(model, small_gemm.kernel())
    assert (ours - theirs).abs().max() < 0.05 * theirs.abs().max()
    top2 = theirs.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 0.5  # not a near-tie
    assert clear.sum() >= ids.shape[1] // 2
    assert torch.equal(ours.argmax(-1)[clear], theirs.argmax(-1)[clear])


@needs_kernel
def test_auto_measures_once_and_reads_the_choice_back(bf16_target, tmp_path, monkeypatch):
    cache = tmp_path / "choice.json"
    model = bf16_target.model
    before = bf16_target.kernels
    try:
        first = small_gemm.wanted("auto", model, CPU, cache)
        record = json.loads(cache.read_text())
        assert record["small_gemm"] == first and record["onednn_s"] > 0 and record["small_gemm_s"] > 0
        assert packed_linear.packed_kernels(model) == {"onednn"}  # measuring leaves oneDNN in place

        def must_not_time(*args, **kwargs):
            raise AssertionError("timed again despite a cached choice")

        monkeypatch.setattr("spec_bench.engine.cost.compare_forwards", must_not_time)
        assert small_gemm.wanted("auto", model, CPU, cache) == first
        assert not small_gemm.wanted(False, model, CPU, cache)
        assert small_gemm.wanted(True, model, CPU, cache)
    finally:
        if "small-gemm" in before:
            packed_linear.use_packed_linear(model, small_gemm.kernel())

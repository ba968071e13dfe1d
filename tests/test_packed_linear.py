"""The CPU's prepacked linear kernel: the same map, chosen by measuring whole forwards, cached,
skipped where it cannot run or would not fit."""

from __future__ import annotations

import json
import types

import pytest
import torch
import torch.nn.functional as F

from spec_bench.models import packed_linear

CPU = torch.device("cpu")
BF16_PACKS = torch.backends.mkldnn.is_available() and packed_linear.packs(torch.bfloat16)
needs_bf16_packing = pytest.mark.skipif(
    not BF16_PACKS, reason="oneDNN does not pack bf16 weights on this CPU (no AVX-512 BW/VL/DQ)"
)
DTYPES = [torch.float32, pytest.param(torch.bfloat16, marks=needs_bf16_packing)]


class Scaled(torch.nn.Linear):
    pass


@pytest.mark.parametrize("dtype", DTYPES)
def test_packed_layers_compute_the_same_map_and_unpack_cleanly(dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 96), torch.nn.Linear(96, 32, bias=False), Scaled(32, 32)
    ).to(dtype)
    inputs = {rows: torch.randn(1, rows, 64, dtype=dtype) for rows in (1, 3, 16)}
    with torch.inference_mode():
        expected = {rows: model(x) for rows, x in inputs.items()}
        assert packed_linear.use_packed_linear(model) == 2  # the subclass keeps its forward
        assert "forward" not in vars(model[2]) and "forward" in vars(model[0])
        for rows, x in inputs.items():
            tolerance = (
                dict(rtol=1.6e-2, atol=1e-2) if dtype == torch.bfloat16 else dict(rtol=1e-5, atol=1e-5)
            )
            torch.testing.assert_close(model(x), expected[rows], **tolerance)
        packed_linear.use_plain_linear(model)
        assert not any("forward" in vars(m) or "packed_weight" in vars(m) for m in model)
        for rows, x in inputs.items():
            assert torch.equal(model(x), expected[rows])


@needs_bf16_packing
def test_one_row_through_the_packed_weight_equals_f_linear_bit_for_bit():
    """An AR step must not round differently because its layer was packed."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(576, 1536, bias=False).to(torch.bfloat16)
    x = torch.randn(1, 576, dtype=torch.bfloat16)
    with torch.inference_mode():
        expected = F.linear(x, layer.weight)
        packed_linear.use_packed_linear(layer)
        assert torch.equal(layer(x), expected)


class Attention(torch.nn.Module):
    """Named as Llama names its projections; ``order`` is the order the forward calls them."""

    def __init__(self, order=("q_proj", "k_proj", "v_proj"), bias=False):
        super().__init__()
        self.q_proj = torch.nn.Linear(64, 64, bias=bias)
        self.k_proj = torch.nn.Linear(64, 16, bias=bias)
        self.v_proj = torch.nn.Linear(64, 16, bias=bias)
        self.order = order

    def forward(self, x):
        return torch.cat([getattr(self, name)(x) for name in self.order], dim=-1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", [("q_proj", "k_proj", "v_proj"), ("v_proj", "q_proj", "v_proj", "k_proj")])
def test_sibling_projections_packed_as_one_matrix_give_bit_identical_outputs(dtype, order):
    """q, k and v read one input: one product for the three, each output as its own layer's
    packed product gives it (any call order, a sibling called twice computing again)."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN")
    torch.manual_seed(0)
    fused, separate = Attention(order, bias=True).to(dtype), Attention(order, bias=True).to(dtype)
    separate.load_state_dict(fused.state_dict())
    with torch.inference_mode():
        packed_linear.use_packed_linear(fused)
        assert packed_linear.fused_layers(fused) == 3
        for layer in separate.children():  # packed one by one
            layer.packed_weight = torch.ops.mkldnn._reorder_linear_weight(layer.weight, 1)
            layer.packed_kernel = packed_linear.ONEDNN
            layer.forward = types.MethodType(packed_linear._packed_forward, layer)
        for rows in (1, 3, 16):
            x = torch.randn(1, rows, 64, dtype=dtype)
            assert torch.equal(fused(x), separate(x))
        if len(order) == 3:  # each called once: nothing held between forwards
            assert fused.q_proj.fused_siblings[0]._input is None
        packed_linear.use_plain_linear(fused)
        assert packed_linear.fused_layers(fused) == 0
        patches = {"forward", "packed_weight", "packed_kernel", "fused_siblings"}
        assert not any(vars(m).keys() & patches for m in fused.children())


def test_a_dtype_onednn_cannot_pack_here_is_left_on_plain_linear_layers(monkeypatch):
    """Without AVX-512, oneDNN refuses to pack bf16 weights: the model must load unpacked,
    not fail."""

    def refuse(weight):
        raise RuntimeError("mkldnn_reorder_linear_weight: bf16 path needs the cpu support ...")

    model = torch.nn.Sequential(torch.nn.Linear(64, 64)).to(torch.bfloat16)
    monkeypatch.setattr(packed_linear, "_available_memory", lambda: None)
    monkeypatch.setattr(packed_linear, "_pack", refuse)
    packed_linear.packs.cache_clear()
    try:
        assert not packed_linear.packs(torch.bfloat16)
        assert not packed_linear.available(model, CPU)
        assert not packed_linear.wanted(True, model, CPU)
    finally:
        packed_linear.packs.cache_clear()


def test_nothing_to_pack_off_the_cpu_or_without_room_for_a_second_copy(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Linear(64, 64))
    assert not packed_linear.available(model, torch.device("cuda"))
    assert not packed_linear.wanted(True, model, torch.device("cuda"))
    monkeypatch.setattr(packed_linear, "_available_memory", lambda: 1024)
    assert not packed_linear.available(model, CPU)  # 16 KiB of weights, 1 KiB free
    monkeypatch.setattr(packed_linear, "_available_memory", lambda: None)
    assert packed_linear.available(model, CPU) == torch.backends.mkldnn.is_available()


def test_auto_measures_once_per_cache_and_forced_settings_rule(target, tmp_path, monkeypatch):
    cache = tmp_path / "kernels" / "m-packed.json"
    first = packed_linear.wanted("auto", target.model, target.device, cache)
    record = json.loads(cache.read_text())
    assert record["packed_linear"] == first and record["plain_s"] > 0 and record["packed_s"] > 0
    assert not any(
        "packed_weight" in vars(m) for m in target.model.modules() if type(m) is torch.nn.Linear
    ) or ("packed-linear" in target.kernels)

    def must_not_time(*_):
        raise AssertionError("measured again although the choice is cached")

    monkeypatch.setattr(packed_linear, "time_forwards", must_not_time)
    assert packed_linear.wanted("auto", target.model, target.device, cache) == first
    cache.write_text(json.dumps({"packed_linear": not first}))
    assert packed_linear.wanted("auto", target.model, target.device, cache) == (not first)
    assert not packed_linear.wanted(False, target.model, target.device, cache)


def test_the_target_says_which_linear_kernel_it_runs(target):
    layers = [m for m in target.model.modules() if type(m) is torch.nn.Linear]
    patched = [m for m in layers if "forward" in vars(m)]
    packed = [m for m in layers if "packed_weight" in vars(m)]
    kernels = set(target.kernels.split("+"))
    assert kernels <= {
        "default",
        "packed-linear",
        "fused-projections",
        "small-rows-matmul",
        "small-gemm",
        "no-cudnn-attention",
        "grouped-attention",
        "frozen",
        "compiled",
    }
    fused = packed_linear.fused_layers(target.model)
    assert bool(packed or fused) == ("packed-linear" in kernels)
    assert bool(fused) == ("fused-projections" in kernels)
    assert bool(patched) == bool(kernels & {"packed-linear", "small-rows-matmul"})


def test_compiling_drops_the_packed_copies_and_lets_inductor_freeze_instead(monkeypatch):
    """dynamo cannot trace oneDNN's packed tensors; on a CPU Inductor's freezing packs itself."""
    import torch._inductor.config as inductor_config

    from spec_bench.models.loading import Target

    monkeypatch.setattr(inductor_config, "freezing", False)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    packed_linear.use_packed_linear(model)
    target = Target("tiny", model, None, "", CPU, torch.float32, kernels="packed-linear")
    target.compile()  # wraps only; nothing is compiled before the first call
    assert not any(key in vars(model[0]) for key in ("packed_weight", "forward"))
    assert inductor_config.freezing and target.kernels == "frozen+compiled"
    target.compile()
    assert target.kernels == "frozen+compiled"


def test_the_embedded_model_multiplies_each_layers_siblings_once(target, monkeypatch):
    """Fused for real: q/k/v and gate/up of each decoder layer are one product each (four a
    layer with o and down, and the LM head), not recomputed per sibling."""
    if "fused-projections" not in target.kernels:
        pytest.skip(f"kernels here: {target.kernels}")
    products = []
    real = packed_linear._product
    monkeypatch.setattr(packed_linear, "_product", lambda *a: products.append(1) or real(*a))
    with torch.inference_mode():
        target.model(input_ids=torch.tensor([[1, 2, 3]]))
    layers = target.model.config.num_hidden_layers
    assert len(products) == 4 * layers + 1

"""Linear layers on oneDNN's prepacked weights, where that is measured faster.

``F.linear`` on a CPU hands oneDNN a plain weight matrix at every call, and for the one to
sixteen rows of a decoding step oneDNN's bf16 kernel then runs well below what the memory can
stream: on the 2-core EPYC (AVX-512 BF16), one 576x1536 bf16 layer whose weights come from
memory took 126 us, and reading the same bytes 59 us. With the weights reordered once into
oneDNN's blocked layout (``torch.ops.mkldnn._reorder_linear_weight``, what Inductor's
freezing does for compiled CPU models) the same product took 92 us, with identical results,
and the embedded model's whole one-token forward went from 40 to 29 ms. In fp32 on the same
machine it helped wide trees and not single tokens. So ``packed_linear: auto`` times whole
verification forwards with and without packing, in the model's dtype, and keeps the packed
weights only where they are faster; the choice is cached like the other kernel choices.

Sibling projections that read the same input (an attention block's q, k and v, an MLP's gate
and up) are packed as one matrix and multiplied once: the first sibling called computes all
their outputs and the others pick theirs up. Fewer, larger products stream the weights better:
on the 2-core EPYC the embedded model's bf16 linear layers took 21.3 / 36.8 ms per 1 / 16-token
forward as seven products a layer and 18.3 / 29.1 ms as four, with bit-identical outputs (each
output column is still its own dot product over the same inputs).

The packed copies live beside the model's own weights (which the embeddings and anything
reading the parameters still use), so packing is skipped when a second copy would not fit
comfortably in the memory that is free.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spec_bench.models import kernel_choice

MEASURE_SIZES = (1, 4, 16)  # tokens per timed forward: an AR step and typical verifications
CALLS = 6  # timed rounds per setting, after one warm-up round
MARGIN = 0.95  # pack only when the packed forwards take under 95% of the time: a clear win
MEMORY_SHARE = 0.5  # the packed copy may take at most this share of the memory now available
# Layers of one module that read the same input, named as Llama, Mistral and Qwen2 name them,
# in the order their module's forward calls them.
SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def available(model: torch.nn.Module, device: torch.device) -> bool:
    """A CPU build of torch with oneDNN's linear-weight packing, a float model, and room for
    a second copy of the linear weights."""
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return False
    layers = _plain_linears(model)
    if not layers or layers[0].weight.dtype not in (torch.float32, torch.bfloat16):
        return False
    if not packs(layers[0].weight.dtype):
        return False
    needed = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    free = _available_memory()
    return free is None or needed <= MEMORY_SHARE * free


@functools.cache
def packs(dtype: torch.dtype) -> bool:
    """Whether oneDNN packs ``dtype`` weights on this CPU. Its bf16 path needs AVX-512 (BW, VL
    and DQ) or AVX-NE-CONVERT and raises without them: on the 2-core EPYC with AVX2 only, a
    bf16 target failed to load while ``packed_linear: auto`` measured it."""
    try:
        _pack(torch.zeros(16, 16, dtype=dtype))
    except RuntimeError:
        return False
    return True


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _plain_linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    # Subclasses (quantized, LoRA) keep their own forward.
    return [module for module in model.modules() if type(module) is torch.nn.Linear]


def _pack(weight: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1)


def _packed_product(x: torch.Tensor, packed_weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed_weight, bias, "none", [], "")


@dataclass(frozen=True)
class Kernel:
    """How a layer's weights are packed and multiplied: oneDNN's (``ONEDNN``), or another kernel
    for the weights it ``fits`` (the others stay on oneDNN's)."""

    name: str
    pack: Callable[[torch.Tensor], torch.Tensor]
    product: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    fits: Callable[[torch.Tensor], bool] = lambda weight: True


ONEDNN = Kernel("onednn", _pack, _packed_product)


def _product(kernel: Kernel, x: torch.Tensor, packed_weight: torch.Tensor, bias) -> torch.Tensor:
    return kernel.product(x, packed_weight, bias)


def _kernel_for(kernel: Kernel, weight: torch.Tensor) -> Kernel:
    return kernel if kernel.fits(weight) else ONEDNN


def _packed_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return _product(self.packed_kernel, x, self.packed_weight, self.bias)


class FusedSiblings:
    """Linear layers that read one input, packed as one matrix. The first sibling called with
    an input computes every sibling's output; each other sibling called with that same tensor
    takes its own and drops it. A sibling called with another input, or twice, computes again:
    slower, never wrong."""

    def __init__(self, layers: list[torch.nn.Linear], kernel: Kernel = ONEDNN) -> None:
        self.sizes = [layer.out_features for layer in layers]
        weight = torch.cat([layer.weight.detach() for layer in layers])
        self.requested = kernel  # what use_packed_linear asked for; ``kernel`` runs it
        self.kernel = _kernel_for(kernel, weight)
        self.packed_weight = self.kernel.pack(weight)
        biases = [layer.bias for layer in layers]
        self.bias = None if biases[0] is None else torch.cat([bias.detach() for bias in biases])
        self._input: torch.Tensor | None = None
        self._outputs: list[torch.Tensor | None] = []

    def output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if x is not self._input or self._outputs[index] is None:
            product = _product(self.kernel, x, self.packed_weight, self.bias)
            self._input, self._outputs = x, list(product.split(self.sizes, dim=-1))
        output, self._outputs[index] = self._outputs[index], None
        if all(left is None for left in self._outputs):
            self._input = None  # hold no tensor between forwards
        return output


def _fused_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    siblings, index = self.fused_siblings
    return siblings.output(index, x)


def _sibling_groups(model: torch.nn.Module) -> list[list[torch.nn.Linear]]:
    """Groups of plain linear layers of one module that can be packed as one matrix."""
    groups = []
    for module in model.modules():
        for names in SIBLINGS:
            layers = [getattr(module, name, None) for name in names]
            if not all(type(layer) is torch.nn.Linear for layer in layers):
                continue
            first = layers[0]
            if all(
                layer.in_features == first.in_features
                and layer.weight.dtype == first.weight.dtype
                and (layer.bias is None) == (first.bias is None)
                for layer in layers
            ):
                groups.append(layers)
    return groups


def use_packed_linear(model: torch.nn.Module, kernel: Kernel = ONEDNN) -> int:
    """Pack every plain ``nn.Linear`` of ``model`` for ``kernel`` (once; again only when the
    kernel changes), siblings as one matrix, and route each forward through the packed
    weights; returns how many layers were routed."""
    layers = _plain_linears(model)
    fused = set()
    for group in _sibling_groups(model):
        siblings = None
        for index, layer in enumerate(group):
            held = vars(layer).get("fused_siblings")
            if held is None or held[0].requested is not kernel:
                siblings = siblings or FusedSiblings(group, kernel)
                layer.fused_siblings = (siblings, index)
            layer.forward = types.MethodType(_fused_forward, layer)
            fused.add(layer)
    for layer in layers:
        if layer in fused:
            continue
        runs_on = _kernel_for(kernel, layer.weight)
        if "packed_weight" not in vars(layer) or vars(layer).get("packed_kernel") is not runs_on:
            layer.packed_weight = runs_on.pack(layer.weight)
            layer.packed_kernel = runs_on
        layer.forward = types.MethodType(_packed_forward, layer)
    return len(layers)


def packed_kernels(model: torch.nn.Module) -> set[str]:
    """The names of the kernels ``model``'s packed layers run on."""
    names = set()
    for layer in _plain_linears(model):
        if "fused_siblings" in vars(layer):
            names.add(layer.fused_siblings[0].kernel.name)
        elif "packed_kernel" in vars(layer):
            names.add(layer.packed_kernel.name)
    return names


def fused_layers(model: torch.nn.Module) -> int:
    """How many of ``model``'s linear layers run as part of a packed sibling group."""
    return sum("fused_siblings" in vars(layer) for layer in _plain_linears(model))


def use_plain_linear(model: torch.nn.Module, keep_packed: bool = False) -> None:
    """Back to ``F.linear`` (dropping the packed copies unless ``keep_packed``)."""
    for layer in _plain_linears(model):
        vars(layer).pop("forward", None)
        if not keep_packed:
            vars(layer).pop("packed_weight", None)
            vars(layer).pop("packed_kernel", None)
            vars(layer).pop("fused_siblings", None)


def wanted(
    setting, model: torch.nn.Module, device: torch.device, cache: str | os.PathLike | None = None
) -> bool:
    """``auto``: whether packed weights make this model's verification forwards faster here
    (the measurement read from ``cache`` when it holds one, else written there); true packs
    wherever packing is available, false never packs."""
    if setting is not None and setting != "auto":
        return bool(setting) and available(model, device)
    if not available(model, device):
        return False

    def measure() -> dict:
        plain, packed = time_forwards(model, device)
        choice = packed < MARGIN * plain
        return {"packed_linear": choice, "plain_s": plain, "packed_s": packed, "sizes": list(MEASURE_SIZES)}

    return kernel_choice.cached_or_measured("packed_linear", cache, measure)


def time_forwards(model: torch.nn.Module, device: torch.device) -> tuple[float, float]:
    """Median seconds of one forward of each of ``MEASURE_SIZES`` tokens with plain and with
    packed linear layers, interleaved; the model's layers are left as they were found."""
    from spec_bench.engine.cost import compare_forwards

    found = {
        layer: {key: vars(layer)[key] for key in _PATCHES if key in vars(layer)}
        for layer in _plain_linears(model)
    }
    try:
        times = compare_forwards(
            model,
            device,
            {
                "plain": lambda: use_plain_linear(model, keep_packed=True),
                "packed": lambda: use_packed_linear(model),
            },
            sizes=MEASURE_SIZES,
            calls=CALLS,
        )
    finally:
        for layer, attributes in found.items():
            for key in _PATCHES:
                vars(layer).pop(key, None)
            vars(layer).update(attributes)
    return times["plain"], times["packed"]


# What packing sets on a layer's instance.
_PATCHES = ("forward", "packed_weight", "packed_kernel", "fused_siblings")

"""Linear layers over a few rows as ``W @ x.T``, where that is the faster kernel.

For the 2 to 64 rows of a verification step, the fp32 CPU BLAS behind ``F.linear``
(``x @ W.T``) scaled almost linearly with the rows on the 2-core machine, as if it streamed
the weights once per row: a 2-token forward cost 1.45x a 1-token one and a 16-token forward
2.4x; ``W @ x.T`` reads the weights once for all rows (1.2x and 2.0x). In bf16 on the same
CPU it is the other way round (oneDNN's bf16 GEMM handles few rows well, the transposed
product does not), and on a GPU neither matters. So ``small_rows_matmul: auto`` times both
kernels on the model's own layers, in its dtype on its device, and patches only when
``W @ x.T`` is faster. The choice is cached beside the cost curve (per model, device, dtype
and thread count): when the two kernels are close, timing them again in every process would
let noise give two runs of one grid different kernels, and their speedups would no longer
compare. One row, the autoregressive step, and long prefills always keep
``F.linear``. Every drafter and the AR baseline run on the same model, and the runs'
``ar_match`` checks that greedy outputs are unchanged.
"""

from __future__ import annotations

import os
import statistics
import time
import types

import torch
import torch.nn.functional as F

from spec_bench.models import kernel_choice

MAX_ROWS = 64  # above this the BLAS's own GEMM is as fast or faster


def _small_rows_forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    if not 2 <= rows <= MAX_ROWS:
        return F.linear(x, self.weight, self.bias)
    out = (self.weight @ x.reshape(rows, x.shape[-1]).T).T.reshape(*x.shape[:-1], self.out_features)
    return out if self.bias is None else out + self.bias


def use_small_rows_matmul(model: torch.nn.Module) -> int:
    """Patch every ``nn.Linear`` of ``model``; returns how many were patched."""
    patched = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:  # subclasses (quantized, LoRA) keep their own
            module.forward = types.MethodType(_small_rows_forward, module)
            patched += 1
    return patched


ROWS_TIMED = (2, 4, 8, 16)  # verification sizes the choice is made for
REPEATS = 15
MARGIN = 0.95  # patch only when W @ x.T takes under 95% of F.linear's time: a clear win


def wanted(setting, model: torch.nn.Module, cache: str | os.PathLike | None = None) -> bool:
    """``auto``: when ``W @ x.T`` is measured faster than ``F.linear`` on this model's
    linear layers, in its dtype, on its device (the measurement read from ``cache`` when it
    holds one, else written there); true/false force it."""
    if setting not in (None, "auto"):
        return bool(setting)

    def measure() -> dict:
        default, transposed = time_kernels(model)
        choice = transposed < MARGIN * default
        return {"small_rows_matmul": choice, "f_linear_s": default, "transposed_s": transposed}

    return kernel_choice.cached_or_measured("small_rows_matmul", cache, measure)


@torch.inference_mode()
def time_kernels(model: torch.nn.Module) -> tuple[float, float]:
    """Seconds for one pass of ``F.linear`` and of ``W @ x.T`` over the plain linear layers of
    one decoder block (the first layers with distinct shapes), summed over ``ROWS_TIMED``;
    medians of ``REPEATS``, the two kernels interleaved so drift hits both alike."""
    layers, shapes = [], set()
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.shape not in shapes:
            shapes.add(module.weight.shape)
            layers.append(module)
        if len(layers) == 4:
            break
    if not layers:
        return 1.0, 1.0
    weight = layers[0].weight
    sync = torch.cuda.synchronize if weight.device.type == "cuda" else (lambda: None)
    inputs = {
        (id(layer), rows): torch.randn(rows, layer.in_features, dtype=weight.dtype, device=weight.device)
        for layer in layers
        for rows in ROWS_TIMED
    }

    def one_pass(kernel) -> float:
        sync()
        start = time.perf_counter()
        for layer in layers:
            for rows in ROWS_TIMED:
                kernel(layer, inputs[(id(layer), rows)])
        sync()
        return time.perf_counter() - start

    default_kernel = lambda layer, x: F.linear(x, layer.weight, layer.bias)  # noqa: E731
    transposed_kernel = lambda layer, x: (layer.weight @ x.T).T  # noqa: E731
    one_pass(default_kernel), one_pass(transposed_kernel)  # warm-up
    default, transposed = [], []
    for _ in range(REPEATS):
        default.append(one_pass(default_kernel))
        transposed.append(one_pass(transposed_kernel))
    return statistics.median(default), statistics.median(transposed)

"""Cheaper verification forwards on CPU: linear layers over a few rows as ``W @ x.T``.

For the 2 to 64 rows of a verification step, the CPU BLAS behind ``F.linear`` (``x @ W.T``)
scales almost linearly with the rows, as if it streamed the weights once per row: measured
on the 2-core machine with the embedded model, a 2-token forward cost 1.45x a 1-token
forward and a 16-token forward 2.4x. Computing ``W @ x.T`` instead reads the weights once
for all rows (1.2x and 2.0x). One row, the autoregressive step, and long prefills keep
``F.linear``. Every drafter and the AR baseline run on the same patched model, and the
runs' ``ar_match`` checks that greedy outputs are unchanged.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

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


def wanted(setting, device: torch.device) -> bool:
    """``auto``: on CPU only (GPU GEMMs have no such cost); true/false force it."""
    if setting in (None, "auto"):
        return device.type == "cpu"
    return bool(setting)

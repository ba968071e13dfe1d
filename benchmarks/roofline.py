"""What the hardware allows: the machine's read bandwidth and peak matmul rate in a dtype,
and from them a lower bound on a verification forward of ``n`` tokens: it must stream every
weight once (bytes / bandwidth) and do 2 x parameters x n floating-point operations (over the
peak rate), whichever takes longer. Attention over the prefix and the per-layer overheads
come on top; the gap between the bound and the measured cost curve is what a fused,
compiled forward could still win."""

from __future__ import annotations

import statistics
import time

import torch

READ_BYTES = 1 << 28  # 256 MiB: far past any cache
MATMUL_SIZE = 2048
REPEATS = 5


def read_bandwidth(repeats: int = REPEATS) -> float:
    """Bytes per second read by summing a large fp32 tensor (median of ``repeats``)."""
    data = torch.ones(READ_BYTES // 4, dtype=torch.float32)
    data.sum()  # warm-up: pages mapped, threads started
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        data.sum()
        times.append(time.perf_counter() - start)
    return READ_BYTES / statistics.median(times)


def peak_matmul(dtype: torch.dtype, size: int = MATMUL_SIZE, repeats: int = REPEATS) -> float:
    """Floating-point operations per second of a square matmul in ``dtype`` on the CPU."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def model_bytes_and_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """Bytes and count of the distinct weights a forward reads (tied weights once)."""
    seen, total_bytes, total = set(), 0, 0
    for parameter in model.parameters():
        if parameter.data_ptr() in seen:
            continue
        seen.add(parameter.data_ptr())
        total_bytes += parameter.numel() * parameter.element_size()
        total += parameter.numel()
    return total_bytes, total


def lower_bound(tokens: int, weight_bytes: int, parameters: int, bandwidth: float, flops: float) -> float:
    """Seconds a forward of ``tokens`` tokens cannot beat on this machine."""
    return max(weight_bytes / bandwidth, 2 * parameters * tokens / flops)

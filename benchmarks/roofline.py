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
GPU_MATMUL_SIZE = 8192
REPEATS = 5


def _median_seconds(work, device: torch.device, repeats: int) -> float:
    # A GPU runs kernels asynchronously: without a synchronize the clock would time the launch.
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    work()  # warm-up: pages mapped, threads started, kernels loaded
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_bandwidth(device: torch.device | str = "cpu", repeats: int = REPEATS) -> float:
    """Bytes per second read by summing a large fp32 tensor on ``device`` (median of ``repeats``)."""
    device = torch.device(device)
    data = torch.ones(READ_BYTES // 4, dtype=torch.float32, device=device)
    return READ_BYTES / _median_seconds(data.sum, device, repeats)


def peak_matmul(
    dtype: torch.dtype, device: torch.device | str = "cpu", size: int | None = None, repeats: int = REPEATS
) -> float:
    """Floating-point operations per second of a square matmul in ``dtype`` on ``device``."""
    device = torch.device(device)
    # A GPU reaches its peak only on products far larger than a CPU needs.
    size = size or (MATMUL_SIZE if device.type == "cpu" else GPU_MATMUL_SIZE)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return 2 * size**3 / _median_seconds(lambda: a @ b, device, repeats)


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

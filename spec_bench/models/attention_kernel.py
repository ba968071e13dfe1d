"""Whether a GPU's scaled-dot-product attention may use cuDNN, decided by measurement.

On an H100 (torch 2.11, bf16, a tree mask and grouped-query heads), PyTorch's SDPA picks
cuDNN attention, and cuDNN builds an execution plan for every new pair of query and key
lengths. A repeated shape then costs 20 ms a forward for the embedded model, a new one 57-60 ms
(benchmarks/nvidia-h100-80gb-hbm3-16t/2026-11-26-step-profile). Decoding meets a new key
length at every step (the cached prefix grows), so it pays the plan at every step, while a cost
curve measured at one prefix length never does. Without cuDNN the same forwards take 23-26 ms
at any shape (the math kernel). Which way wins depends on the GPU, the library versions and
the model, so ``cudnn_attention: auto`` times both at shapes never seen before in the process,
as decoding sees them, and keeps cuDNN only when it is faster. The choice is cached per model,
device, dtype and thread count, like the linear-layer kernel (``small_matmul``). CPUs have no
cuDNN: nothing is chosen there.

PyTorch keeps the switch process-wide, but the choice belongs to one model: ``make bench`` loads
the target in bf16 and again in fp32, and the fp32 load's choice (cuDNN allowed) re-enabled
cuDNN under the bf16 model, which had measured it slower, and whose forwards then took 54-60 ms
instead of ~20 on an H200 (benchmarks/nvidia-h200-16t/2026-11-28-cudnn-per-model). So each
model sets the switch to its own choice before each of its forwards (``follow``).
"""

from __future__ import annotations

import os

import torch

from spec_bench.models import kernel_choice

TREE_TOKENS = 16  # tokens per timed forward: a typical verification
CALLS = 8  # timed forwards per setting, after one warm-up each
MARGIN = 0.95  # turn cuDNN off only when the forwards without it take under 95% of the time
HOOK = "_cudnn_attention_hook"  # the model's attribute: (its switch's hook handle, its choice)


def choose(
    setting, model: torch.nn.Module, device: torch.device, cache: str | os.PathLike | None
) -> bool | None:
    """Whether SDPA may use cuDNN attention in ``model``'s forwards (which set the switch to it
    from now on, ``follow``); ``None`` where there is nothing to choose (no CUDA, or no cuDNN
    attention in this torch). ``auto`` measures (or reads the cached measurement); true/false
    force it."""
    if device.type != "cuda" or not hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        return None
    if setting not in (None, "auto"):
        enabled = bool(setting)
    else:

        def measure() -> dict:
            with_cudnn, without = time_fresh_shapes(model, device)
            enabled = not without < MARGIN * with_cudnn
            return {"cudnn_attention": enabled, "with_cudnn_s": with_cudnn, "without_s": without}

        enabled = kernel_choice.cached_or_measured("cudnn_attention", cache, measure)
    follow(model, enabled)
    return enabled


def follow(model: torch.nn.Module, enabled: bool) -> None:
    """Set the process-wide cuDNN switch to ``enabled`` now and before every forward of
    ``model`` (its own calls and ``generate``'s), whatever another model set in between."""
    unfollow(model)

    def switch(_module, _args) -> None:
        torch.backends.cuda.enable_cudnn_sdp(enabled)

    setattr(model, HOOK, (model.register_forward_pre_hook(switch), enabled))
    torch.backends.cuda.enable_cudnn_sdp(enabled)


def unfollow(model: torch.nn.Module) -> bool | None:
    """Stop ``model`` setting the switch; returns the choice it followed (``None``: none)."""
    handle, enabled = vars(model).pop(HOOK, (None, None))
    if handle is not None:
        handle.remove()
    return enabled


def time_fresh_shapes(model: torch.nn.Module, device: torch.device) -> tuple[float, float]:
    """Median seconds of a ``TREE_TOKENS`` verification forward with cuDNN attention allowed
    and without it, the two interleaved; every forward meets a key length not met before (a
    plan built per shape is part of what decoding pays)."""
    from spec_bench.engine.cost import compare_forwards

    was_enabled = torch.backends.cuda.cudnn_sdp_enabled()
    followed = unfollow(model)  # the timing sets the switch itself, forward by forward
    try:
        times = compare_forwards(
            model,
            device,
            {
                "with": lambda: torch.backends.cuda.enable_cudnn_sdp(True),
                "without": lambda: torch.backends.cuda.enable_cudnn_sdp(False),
            },
            sizes=(TREE_TOKENS,),
            calls=CALLS,
        )
    finally:
        torch.backends.cuda.enable_cudnn_sdp(was_enabled)
        if followed is not None:
            follow(model, followed)
    return times["with"], times["without"]

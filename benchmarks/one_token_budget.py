"""Where a one-token forward's time goes, against its bandwidth bound: the linear layers, the
attention, and everything else (norms, rotary embedding, views, module calls), per forward.

    python -m benchmarks.one_token_budget [--sizes 1,16] [--prefix 300] [--calls 20] [overrides]

``make bench`` reports t(1) against the time to read the weights once; this says which part
of t(1) is above it. Each linear layer and each attention call is timed by a wrapper around
it inside real forwards (on a CPU every operation finishes before it returns, so the sums are
exact up to the wrappers' own microseconds); "rest" is the forward minus both. The linear
layers' bytes over their time is the rate at which the kernel streams the weights, to set
beside the machine's read bandwidth. Prints one JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks import roofline
from spec_bench.commands import compose_config
from spec_bench.engine.cost import _FreshShapeForwards
from spec_bench.models import load_target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,16", help="tokens per forward, comma-separated")
    parser.add_argument("--prefix", type=int, default=300, help="cached tokens before the forward")
    parser.add_argument("--calls", type=int, default=20, help="timed forwards per size")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (model=..., model.dtype=...)")
    return parser.parse_args(argv)


class Stopwatch:
    """Seconds spent inside the wrapped callables since the last ``reset``."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def reset(self) -> None:
        self.seconds = 0.0

    def wrap(self, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def instrument(model: torch.nn.Module) -> tuple[Stopwatch, Stopwatch, int, Callable[[], None]]:
    """Wrap every linear layer's forward and the attention function; returns their stopwatches,
    the linear layers' weight bytes, and a function that takes the wrappers off again."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    linear, attention = Stopwatch(), Stopwatch()
    weight_bytes = 0
    found = {}  # layer -> its own patched forward, or None where it had none
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            weight_bytes += module.weight.numel() * module.weight.element_size()
            found[module] = vars(module).get("forward")
            module.forward = linear.wrap(module.forward)  # the patched forward, when patched
    name = model.config._attn_implementation
    AttentionInterface.register("timed_" + name, attention.wrap(AttentionInterface()[name]))
    AttentionMaskInterface.register("timed_" + name, AttentionMaskInterface()[name])
    model.config._attn_implementation = "timed_" + name

    def restore() -> None:
        for module, forward in found.items():
            vars(module).pop("forward", None)
            if forward is not None:
                module.forward = forward
        model.config._attn_implementation = name

    return linear, attention, weight_bytes, restore


def measure(target, sizes: list[int], calls: int, prefix: int) -> tuple[dict[int, dict[str, float]], int]:
    """Median milliseconds per forward of each of ``sizes`` tokens: the whole forward, its
    linear layers, its attention and the rest; and the linear layers' weight bytes."""
    linear, attention, linear_bytes, restore = instrument(target.model)
    parts: dict[int, dict[str, list[float]]] = {
        size: {"forward": [], "linear": [], "attention": []} for size in sizes
    }
    try:
        with torch.inference_mode():
            forwards = _FreshShapeForwards(
                target.model, target.device, sizes, (calls + 1) * len(sizes), prefix
            )
            for call in range(calls + 1):  # the first round warms up
                for size in sizes:
                    linear.reset()
                    attention.reset()
                    total = forwards.time(size)
                    if call:
                        parts[size]["forward"].append(total)
                        parts[size]["linear"].append(linear.seconds)
                        parts[size]["attention"].append(attention.seconds)
    finally:
        restore()
    result = {}
    for size in sizes:
        ms = {part: 1e3 * statistics.median(values) for part, values in parts[size].items()}
        ms["rest"] = ms["forward"] - ms["linear"] - ms["attention"]
        result[size] = ms
    return result, linear_bytes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = compose_config(args.overrides)
    target = load_target(cfg.model, cfg.cache_dir)
    if target.device.type != "cpu":
        raise SystemExit("one_token_budget times operations as they return: CPU only")
    bandwidth = roofline.read_bandwidth(target.device)
    model_bytes, _ = roofline.model_bytes_and_parameters(target.model)
    bound_ms = 1e3 * model_bytes / bandwidth
    sizes = [int(size) for size in args.sizes.split(",")]
    split, linear_bytes = measure(target, sizes, args.calls, args.prefix)
    for size, ms in split.items():
        record = {
            "tokens": size,
            "dtype": str(target.dtype).removeprefix("torch."),
            "kernels": target.kernels,
            "ms": {part: round(value, 2) for part, value in ms.items()},
            "read_gb_s": round(bandwidth / 1e9, 1),
            "linear_stream_gb_s": round(linear_bytes / ms["linear"] / 1e6, 1),
            "bandwidth_bound_ms": round(bound_ms, 2),
            "forward_over_bound": round(ms["forward"] / bound_ms, 2),
            "linear_and_attention_over_bound": round((ms["linear"] + ms["attention"]) / bound_ms, 2),
        }
        print(json.dumps(record))


if __name__ == "__main__":
    main()

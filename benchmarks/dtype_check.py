"""GPU checklist, step 1: load the target in each half-precision dtype the device offers,
measure its cost curve, and decode a few greedy tokens in each to see the load is sound.

    python -m benchmarks.dtype_check [--dtypes float16,bfloat16,float32] [--tokens 32]

Prints one JSON object per dtype: what loaded, the verification cost curve (seconds per tree
size) and the greedy tokens' agreement with fp32's.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from spec_bench.commands import compose_config
from spec_bench.data.templates import build_prompt
from spec_bench.engine.cost import curve_options, load_latency_curve
from spec_bench.models.loading import load_target

PROMPT = "Write a short story about a robot who learns to paint, in three sentences."


def greedy_tokens(target, count: int) -> tuple[list[int], float]:
    ids = torch.tensor([target.encode(build_prompt(target.template, [PROMPT], []))], device=target.device)
    target.model.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
    start = time.perf_counter()
    out = target.model.generate(ids, max_new_tokens=count, min_new_tokens=count, do_sample=False)
    if target.device.type == "cuda":
        torch.cuda.synchronize()
    return out[0, ids.shape[1] :].tolist(), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model=vicuna7b")
    args = parser.parse_args(argv)
    reference = None
    for dtype in args.dtypes.split(","):
        cfg = compose_config([*args.overrides, f"model.dtype={dtype}"])
        start = time.perf_counter()
        target = load_target(cfg.model, cfg.cache_dir)
        load_s = time.perf_counter() - start
        curve = load_latency_curve(target, cfg.cache_dir, **curve_options(cfg.engine))
        tokens, seconds = greedy_tokens(target, args.tokens)
        reference = reference or tokens
        same = next((i for i, (a, b) in enumerate(zip(tokens, reference)) if a != b), len(tokens))
        row = {
            "dtype": str(target.dtype).removeprefix("torch."),
            "device": str(target.device),
            "kernels": target.kernels,
            "load_s": round(load_s, 2),
            "cost_ms": {n: round(s * 1e3, 3) for n, s in zip(curve.sizes, curve.seconds)},
            "generate_tokens_per_s": round(args.tokens / seconds, 1),
            "tokens_equal_to_first_dtype": same,
            "text": target.decode(tokens),
        }
        print(json.dumps(row), flush=True)
        del target
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where a verification step's time goes: a forward at a repeated shape against a forward at a
new shape every call (as decoding sees: the cached prefix grows each step), per attention
kernel, and the engine's steps at the published and automatic budgets, with a profiler table
of one published-budget answer.

    python -m benchmarks.step_profile [--drafters hd,rest] [--prompts 2] [--out DIR] [overrides]

Written for the GPU anomaly of benchmarks/nvidia-h100-80gb-hbm3-16t/2026-11-26-smoke (steps
at the published budgets took 2.5x what the cost curve prices them at); it runs on a CPU too.
Prints JSON lines and writes them, and the profiler tables, to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from benchmarks.engine_vs_generate import fresh_drafter, pick_prompts, question_file
from spec_bench.commands import compose_config
from spec_bench.engine.auto_budget import auto_budget
from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.cache import TreeCache
from spec_bench.engine.cost import _timed_forward, _tree
from spec_bench.engine.decode import Engine
from spec_bench.engine.proposal import NoDrafter
from spec_bench.engine.verify import TreeInputBuilder
from spec_bench.models import load_target

PREFIX = 300


def attention_backends(device: torch.device) -> dict[str, Callable[[], contextlib.AbstractContextManager]]:
    """Context factories: the default choice and each SDPA kernel alone (those the device may run)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    choices = {"default": contextlib.nullcontext}
    names = ["MATH"] + (["EFFICIENT_ATTENTION", "CUDNN_ATTENTION"] if device.type == "cuda" else [])
    for name in names:
        backend = getattr(SDPBackend, name, None)
        if backend is not None:
            choices[name.lower()] = partial(sdpa_kernel, [backend])
    return choices


@torch.inference_mode()
def shape_timings(target, sizes: list[int], calls: int) -> list[dict]:
    """Median ms of a tree forward after ~300 cached tokens: the same past length every call
    against a new past length every call."""
    device = target.device
    generator = torch.Generator().manual_seed(0)
    vocab = int(target.model.config.vocab_size)
    prefix = torch.randint(100, vocab, (1, PREFIX + calls), generator=generator).to(device)
    builder = TreeInputBuilder(device, target.dtype)
    rows = []
    for backend, context in attention_backends(device).items():
        for size in sizes:
            tree = _tree(size - 1, vocab, generator)
            cache = TreeCache(capacity=PREFIX + calls + size)
            row = {"part": "shapes", "backend": backend, "tokens": size}
            try:
                with context():
                    target.model(input_ids=prefix, cache=cache, use_cache=True, logits_to_keep=1)
                    for mode, pasts in (
                        ("same_shape", [PREFIX] * calls),
                        ("new_shape", range(PREFIX, PREFIX + calls)),
                    ):
                        row[mode + "_ms"] = _median_forward_ms(target, builder, cache, tree, list(pasts))
            except RuntimeError as error:  # a kernel that cannot take this mask or dtype
                row["error"] = str(error).splitlines()[0][:200]
            rows.append(row)
    return rows


def _median_forward_ms(target, builder, cache, tree, pasts: list[int]) -> float:
    pasts = [pasts[0], *pasts]  # the first call warms up
    timings = [_timed_forward(target.model, target.device, builder, cache, tree, past) for past in pasts]
    return round(statistics.median(timings[1:]) * 1e3, 2)


def engine_rows(cfg, target, drafters: list[str], prompts, max_new_tokens: int, backend: str) -> list[dict]:
    """ms per forward and per step of each drafter at paper and auto, and of AR, per prompt."""
    rows = []
    policies = [("ar", NoDrafter(), lambda d: FixedBudget(0))]
    for name in drafters:
        policies.append(
            (f"{name}@paper", fresh_drafter(cfg, name, target), lambda d: FixedBudget(d.paper_budget))
        )
        policies.append(
            (f"{name}@auto", fresh_drafter(cfg, name, target), lambda d: auto_budget(cfg, target, d))
        )
    context = attention_backends(target.device)[backend]
    with context():
        for label, drafter, policy in policies:
            engine = Engine(target, 0.0, policy(drafter))
            engine.generate(prompts[0][1], drafter, 8)  # warm-up
            for prompt_name, ids in prompts:
                generation = engine.generate(ids, drafter, max_new_tokens)
                steps = max(generation.steps, 1)
                times = generation.phase_times
                other = generation.wall_time_s - times["forward"] - times["prefill"]
                rows.append(
                    {
                        "part": "engine",
                        "backend": backend,
                        "threads": torch.get_num_threads(),
                        "run": label,
                        "prompt": prompt_name,
                        "steps": generation.steps,
                        "mean_tree": round(statistics.mean(generation.proposed or [0]) + 1, 1),
                        "forward_ms_per_step": round(generation.phase_times["forward"] * 1e3 / steps, 2),
                        "other_ms_per_step": round(other * 1e3 / steps, 2),
                    }
                )
    return rows


def profile_answer(
    target, drafter, policy, ids: list[int], max_new_tokens: int, out: Path, label: str
) -> None:
    """A torch.profiler table of one answer: the ops by self time on the host and device."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if target.device.type == "cuda" else [])
    engine = Engine(target, 0.0, policy)
    engine.generate(ids, drafter, 8)
    with profile(activities=activities) as prof:
        engine.generate(ids, drafter, max_new_tokens)
    averages = prof.key_averages()
    sorts = ["cpu_time_total", "self_cpu_time_total"] + (
        ["self_cuda_time_total"] if target.device.type == "cuda" else []
    )
    text = "\n\n".join(f"## {label}, by {key}\n{averages.table(sort_by=key, row_limit=25)}" for key in sorts)
    (out / f"profile-{label.replace('@', '-')}.txt").write_text(text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drafters", default="hd,rest")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--sizes", default="1,16,64")
    parser.add_argument("--calls", type=int, default=12, help="timed forwards per shape mode")
    parser.add_argument("--out", default="benchmarks/step-profile")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.dtype=bfloat16")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose_config(args.overrides)
    target = load_target(cfg.model, cfg.cache_dir)
    header = {
        "part": "setup",
        "device": str(target.device),
        "dtype": str(target.dtype),
        "attention": getattr(target.model.config, "_attn_implementation", None),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    prompts = pick_prompts(target, question_file(), args.prompts)
    drafters = [name for name in args.drafters.split(",") if name]
    lines = out / "step_profile.jsonl"
    with lines.open("w") as sink:

        def emit(rows: list[dict]) -> None:
            for row in rows:
                print(json.dumps(row), flush=True)
                sink.write(json.dumps(row) + "\n")
                sink.flush()

        emit([header])
        emit(shape_timings(target, [int(n) for n in args.sizes.split(",")], args.calls))
        emit(engine_rows(cfg, target, drafters, prompts, args.max_new_tokens, "default"))
        if drafters:
            name = drafters[0]
            drafter = fresh_drafter(cfg, name, target)
            profile_answer(
                target,
                drafter,
                FixedBudget(drafter.paper_budget),
                prompts[0][1],
                args.max_new_tokens,
                out,
                f"{name}@paper",
            )
            drafter = fresh_drafter(cfg, name, target)
            profile_answer(
                target,
                drafter,
                auto_budget(cfg, target, drafter),
                prompts[0][1],
                args.max_new_tokens,
                out,
                f"{name}@auto",
            )
        for backend in list(attention_backends(target.device))[1:]:
            try:
                emit(engine_rows(cfg, target, drafters[:1], prompts[:1], args.max_new_tokens, backend))
            except RuntimeError as error:
                emit([{"part": "engine", "backend": backend, "error": str(error).splitlines()[0][:200]}])
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        emit(engine_rows(cfg, target, drafters[:1], prompts[:1], args.max_new_tokens, "default"))
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

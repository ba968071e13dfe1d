"""HD at auto beside fixed budgets on one machine: the cost curve measured twice, each variant's
speed, MAT and most used budgets, and the automatic budget's state after the last answer.

    PYTHONPATH=$PWD N=6 python benchmarks/nvidia-h100-80gb-hbm3-16t/2026-11-27-recheck/hd_auto_probe.py
"""

import os
import time

from benchmarks.engine_vs_generate import (
    QUESTION_FILES,
    compose_config,
    fresh_drafter,
    load_target,
    pick_prompts,
)
from benchmarks.variants import engine_variant, run_interleaved, summarise
from spec_bench.engine.auto_budget import auto_budget
from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.cost import measure_latency_curve
from spec_bench.engine.proposal import NoDrafter

BUDGETS = ("auto", "8", "31", "55", "127")


def milliseconds(sizes, seconds) -> list[str]:
    return [f"{size}:{value * 1e3:.1f}" for size, value in zip(sizes, seconds)]


def main() -> None:
    start = time.time()
    cfg = compose_config([])
    target = load_target(cfg.model, cfg.cache_dir)
    print("loaded", target.device, round(time.time() - start), "s", flush=True)
    for attempt in range(2):
        curve = measure_latency_curve(target, sizes=[int(size) for size in cfg.engine.cost_sizes])
        print("curve", attempt, "ms", milliseconds(curve.sizes, curve.medians), flush=True)
    questions = next(path for path in QUESTION_FILES if path.is_file())
    prompts = pick_prompts(target, questions, int(os.environ.get("N", 6)))
    policies = []

    def make():
        variants = [engine_variant("ar", target, NoDrafter(), FixedBudget(0))]
        for budget in BUDGETS:
            drafter = fresh_drafter(cfg, "hd", target)
            if budget == "auto":
                policy = auto_budget(cfg, target, drafter)
                policies.append(policy)
                print("candidates", policy.candidates, milliseconds(policy.curve.sizes, policy.curve.seconds))
            else:
                policy = FixedBudget(int(budget))
            variants.append(engine_variant(f"hd@{budget}", target, drafter, policy))
        return variants

    outcomes, _ = run_interleaved(make, prompts, 64, 8, rounds=1)
    for name, row in summarise(outcomes).items():
        top = sorted((row.get("budgets") or {}).items(), key=lambda item: -item[1])[:6]
        forward = row.get("phase_ms_per_step", {}).get("forward", 0)
        mat = row.get("mean_accepted_tokens", 1)
        speed = f"{row['tokens_per_s']:6.2f} x{row['speedup_vs_ar']:.3f}"
        print(f"{name:12s} {speed} MAT {mat:.3f} fwd {forward:.2f} top {top}")
    for budget, state in policies[-1].summary().items():
        print(budget, {key: round(value, 4) for key, value in state.items()})
    print("total", round(time.time() - start), "s")


if __name__ == "__main__":
    main()

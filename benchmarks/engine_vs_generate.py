"""make bench: how close to the hardware our engine runs, against transformers' ``generate``,
and how the automatic budget compares with every fixed one, in one process on one machine.

    python -m benchmarks.engine_vs_generate [--prompts N] [--max-new-tokens M] [--out benchmarks]

1. The machine: read bandwidth and peak matmul rate, the cost curve of a verification
   forward in fp32 and in the ``auto`` dtype beside its lower bound (``benchmarks.roofline``).
2. Decoding, greedy, the same prompts, every variant interleaved (``benchmarks.variants``):
   our AR in fp32 and in the auto dtype, ``generate`` in that dtype (plain, with prompt lookup,
   and with a static cache and compiled forward), every drafter at the automatic budget and
   at fixed budgets, its published one included, and our AR and two drafters again on a
   compiled forward (``engine.compile``; compile time reported apart).
3. Each drafter's automatic budget again beside the fixed budget fastest in step 2, the two
   answering each prompt in lockstep, over fresh rounds; and AR beside a second copy of
   itself, the same work twice, which shows how far apart this machine times identical work
   (``confirm_pairs``).
4. AR timed in its own run against AR timed beside each question: the spread of the overall
   speedup over repeats of one grid (``benchmarks.timing_modes``).

Writes ``<out>/<machine>/<date>.md`` and a JSON twin; the markdown says which of the targets
the issues set are met, with the numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import date
from pathlib import Path

import torch
from omegaconf import OmegaConf

from benchmarks import one_token_budget, roofline, timing_modes
from benchmarks.report import AA_COPY, auto_against_fixed, markdown
from benchmarks.variants import (
    PROMPT_LOOKUP_TOKENS,
    engine_variant,
    generate_variant,
    run_interleaved,
    summarise,
)
from spec_bench import environment
from spec_bench.commands import compose_config
from spec_bench.data import CATEGORIES, build_prompt, load_questions, select_questions
from spec_bench.drafters import build_drafter
from spec_bench.engine.auto_budget import auto_budget
from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.cost import curve_options, load_latency_curve
from spec_bench.engine.proposal import NoDrafter
from spec_bench.errors import HarnessError
from spec_bench.models import load_target

REPO = Path(__file__).resolve().parents[1]
QUESTION_FILES = (
    REPO / "data/spec_bench/question.jsonl",
    REPO.parent / "shared/data/spec_bench/question.jsonl",
)


def question_file() -> Path:
    """The first of ``QUESTION_FILES`` that exists (the project's copy, else the shared one)."""
    found = next((path for path in QUESTION_FILES if path.is_file()), None)
    if found is None:
        raise HarnessError(f"no Spec-Bench questions at {' or '.join(map(str, QUESTION_FILES))}")
    return found


DRAFTERS = "pld,rest,lookahead,hd,token_recycling,suffix,hd_tr,hd_suffix,suffix_tr"
SPLIT_SIZES = (1, 16)  # forwards split into linear layers, attention and the rest
SPLIT_CALLS = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=6, help="Spec-Bench prompts, categories in turn")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", default="benchmarks", help="folder of <machine>/<date>.md")
    parser.add_argument(
        "--drafters", default=DRAFTERS, help="conf/drafter/ names, each at auto and fixed budgets"
    )
    parser.add_argument(
        "--budgets", default="8,16,32", help="fixed budgets besides each drafter's published one"
    )
    parser.add_argument("--warmup-tokens", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=2, help="answers per variant and prompt; the fastest is kept"
    )
    parser.add_argument(
        "--confirm-rounds",
        type=int,
        default=3,
        help="rounds re-timing each drafter's auto beside its best fixed budget (0: skip)",
    )
    parser.add_argument(
        "--timing-repeats", type=int, default=3, help="repeats of the timing-modes grid (0: skip)"
    )
    parser.add_argument(
        "--skip-compile", action="store_true", help="no compiled forwards (they take minutes)"
    )
    parser.add_argument(
        "--compiled-drafters", default="pld,suffix_tr", help="drafters also run compiled, at auto"
    )
    parser.add_argument("--questions", default=None, help="question.jsonl (default: data/ or the mirror)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. model.dtype=float32")
    return parser.parse_args(argv)


def pick_prompts(target, questions_path: Path, count: int) -> list[tuple[str, list[int]]]:
    """``count`` first-turn prompts, taking the categories in turn."""
    per_category = -(-count // len(CATEGORIES))
    by_category: dict[str, list] = {category: [] for category in CATEGORIES}
    for question in select_questions(load_questions(questions_path), per_category):
        by_category[question.category].append(question)
    rounds = [[qs[i] for qs in by_category.values() if i < len(qs)] for i in range(per_category)]
    chosen = [question for round_ in rounds for question in round_][:count]
    return [
        (f"{q.question_id} {q.category}", target.encode(build_prompt(target.template, [q.turns[0]], [])))
        for q in chosen
    ]


def machine_section(cfg, targets: dict) -> dict:
    """Bandwidth, peak matmul, and each dtype's cost curve beside its lower bound."""
    # The device the targets run on: a GPU's roofline, not its host CPU's.
    bandwidth = roofline.read_bandwidth(next(iter(targets.values())).device)
    section = {"read_bytes_per_s": bandwidth, "dtypes": {}}
    for name, target in targets.items():
        curve = load_latency_curve(
            target,
            cfg.cache_dir,
            **curve_options(cfg.engine),
            refresh=True,  # measured in this run, beside the decoding it is compared with
        )
        weight_bytes, parameters = roofline.model_bytes_and_parameters(target.model)
        flops = roofline.peak_matmul(target.dtype, target.device)
        section["dtypes"][name] = {
            "dtype": str(target.dtype).removeprefix("torch."),
            "kernels": target.kernels,
            "weight_bytes": weight_bytes,
            "parameters": parameters,
            "peak_flops": flops,
            "sizes": curve.sizes,
            "seconds": curve.seconds,
            "medians": curve.medians,  # as measured, before a size was lowered to a larger one's
            "lower_bound": [
                roofline.lower_bound(n, weight_bytes, parameters, bandwidth, flops) for n in curve.sizes
            ],
        }
        if name == "auto" and target.device.type == "cpu":  # eager: a compiled forward cannot be wrapped
            # Which part of t(1) sits above the bound: timed inside real forwards.
            split, linear_bytes = one_token_budget.measure(
                target, list(SPLIT_SIZES), calls=SPLIT_CALLS, prefix=int(cfg.engine.cost_prefix_length)
            )
            section["dtypes"][name]["split"] = [{"tokens": n, **ms} for n, ms in split.items()]
            section["dtypes"][name]["linear_weight_bytes"] = linear_bytes
    return section


def fresh_drafter(cfg, name: str, target):
    """A new drafter per variant: Token Recycling and suffix trees keep state across requests."""
    overrides = [f"drafter={name}", f"cache_dir={cfg.cache_dir}", f"data_dir={cfg.data_dir}"]
    return build_drafter(compose_config(overrides), target)


def build_variants(cfg, targets: dict, drafters: list[str], budgets: list[int], compiled: list[str]):
    fast = targets["auto"]
    variants = [
        engine_variant("ar", fast, NoDrafter(), FixedBudget(0)),
        engine_variant("ar_fp32", targets["fp32"], NoDrafter(), FixedBudget(0)),
        # What a user gets from transformers: the model as loaded, no kernel choices of ours.
        generate_variant("generate", targets["plain"]),
        generate_variant("generate+pld", targets["plain"], prompt_lookup_num_tokens=PROMPT_LOOKUP_TOKENS),
    ]
    if targets["plain"] is not fast:
        # generate on our kernels: what of our AR's lead is the kernels, and what is the loop.
        variants.append(generate_variant("generate+our-kernels", fast))
    if "generate" in targets:
        static = generate_variant(
            "generate+static+compile", targets["generate"], cache_implementation="static"
        )
        variants.append(static)
    for name in drafters:
        auto = auto_variant(cfg, name, fast, f"{name}@auto")
        variants.append(auto)
        paper = auto.drafter.paper_budget
        for budget in sorted({*budgets, paper}):
            label = f"{name}@paper={budget}" if budget == paper else f"{name}@{budget}"
            variants.append(fixed_variant(cfg, name, fast, label, budget))
    if "compiled" in targets:
        ours = targets["compiled"]
        variants.append(engine_variant("ar+compile", ours, NoDrafter(), FixedBudget(0)))
        variants += [auto_variant(cfg, name, ours, f"{name}+compile@auto") for name in compiled]
    return variants


def auto_variant(cfg, name: str, target, label: str, group: str | None = None):
    """A fresh drafter ``name`` at the automatic budget."""
    drafter = fresh_drafter(cfg, name, target)
    return engine_variant(label, target, drafter, auto_budget(cfg, target, drafter), group)


def fixed_variant(cfg, name: str, target, label: str, budget: int, group: str | None = None):
    """A fresh drafter ``name`` at a fixed budget."""
    return engine_variant(label, target, fresh_drafter(cfg, name, target), FixedBudget(budget), group)


def build_pairs(cfg, target, best_fixed: dict[str, str], fixed_budgets: dict[str, int]) -> list:
    """AR twice, and per drafter its automatic budget beside its best fixed budget (named as
    in the grid: ``pld@8``, ``rest@paper=64``), each pair a group answering a prompt in
    lockstep (``run_lockstep``)."""
    variants = [
        engine_variant(name, target, NoDrafter(), FixedBudget(0), group="ar") for name in ("ar", AA_COPY)
    ]
    for drafter, label in best_fixed.items():
        variants.append(auto_variant(cfg, drafter, target, f"{drafter}@auto", group=drafter))
        variants.append(fixed_variant(cfg, drafter, target, label, fixed_budgets[label], group=drafter))
    return variants


def confirm_pairs(
    cfg, target, rows: dict, fixed_budgets: dict[str, int], drafters: list[str], prompts, args
) -> dict:
    """Auto against the best fixed budget, timed afresh: the grid chose that budget as the
    fastest of several noisy timings, which favours it by chance (the winner's curse), and
    timed it minutes apart from auto. Here the choice is fixed before the timing, and the two
    answer each prompt in lockstep, a step each in turn. ``fixed_budgets``: the grid's fixed
    variants' budgets, by name."""
    best_fixed = {d: row["best_fixed"] for d, row in auto_against_fixed(rows, drafters).items()}
    outcomes, _ = run_interleaved(
        lambda: build_pairs(cfg, target, best_fixed, fixed_budgets),
        prompts,
        args.max_new_tokens,
        args.warmup_tokens,
        rounds=args.confirm_rounds,
        seed=1,
    )
    return {"rounds": args.confirm_rounds, "best_fixed": best_fixed, "variants": summarise(outcomes)}


def stage(started: float, message: str) -> None:
    """One progress line on stderr: the bench spends minutes loading, measuring and compiling
    before its first answer, and a step stopped at a time limit should say where it was."""
    print(f"[bench {time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    cfg = compose_config(list(args.overrides))
    targets = {"auto": load_target(cfg.model, cfg.cache_dir)}
    stage(started, f"loaded the target in {targets['auto'].dtype} ({targets['auto'].kernels})")
    if targets["auto"].dtype == torch.float32:
        targets["fp32"] = targets["auto"]
    else:
        targets["fp32"] = load_target(OmegaConf.merge(cfg.model, {"dtype": "float32"}), cfg.cache_dir)
    # The model as a user of transformers loads it: our linear-layer and attention kernels off.
    # (Its cuDNN attention choice is read from the same cache as the auto target's: a GPU's
    # choice is the kernels' own, not ours, so generate gets it too.)
    plain = {
        "packed_linear": False,
        "small_rows_matmul": False,
        "grouped_query_attention": False,
        "small_attention": False,
        "fused_ops": False,
    }
    ours = {"packed-linear", "small-rows-matmul", "grouped-attention", "small-attention", "fused-ops"}
    if not ours & set(targets["auto"].kernels.split("+")):
        targets["plain"] = targets["auto"]
    else:
        targets["plain"] = load_target(OmegaConf.merge(cfg.model, plain), cfg.cache_dir)
    stage(started, "loaded the fp32 and plain-kernel targets")
    if not args.skip_compile:
        # Our engine and generate each on a model of their own: their compiled graphs differ.
        for name in ("compiled", "generate"):
            targets[name] = load_target(cfg.model, cfg.cache_dir)
            targets[name].compile()
        stage(started, "loaded the targets to compile (each compiles at its first forwards)")
    questions = Path(args.questions) if args.questions else question_file()
    prompts = pick_prompts(targets["auto"], questions, args.prompts)

    stage(started, "measuring bandwidth, matmul rate and cost curves")
    # Each model once: where auto is fp32, a second curve of the same model overwrote the
    # cached one, so the policy read a curve the report did not show (one run measured 4
    # tokens at 108 ms, then 84).
    timed = {"auto": targets["auto"]}
    timed.update(
        {n: targets[n] for n in ("fp32", "compiled") if n in targets and targets[n] is not targets["auto"]}
    )
    machine = machine_section(cfg, timed)
    stage(started, "decoding")
    drafters = [name for name in args.drafters.split(",") if name]
    budgets = [int(b) for b in args.budgets.split(",") if b]
    compiled = [name for name in args.compiled_drafters.split(",") if name]
    rounds_variants: list[list] = []  # each round's set: the policies' summaries are the last's

    def fresh_variants() -> list:
        rounds_variants.append(build_variants(cfg, targets, drafters, budgets, compiled))
        return rounds_variants[-1]

    outcomes, warm_up = run_interleaved(
        fresh_variants,
        prompts,
        args.max_new_tokens,
        args.warmup_tokens,
        rounds=args.rounds,
    )
    rows = summarise(outcomes)
    pairs = {}
    if args.confirm_rounds:
        stage(started, "re-timing auto beside each drafter's best fixed budget, in pairs")
        fixed_budgets = {
            v.name: v.policy.budget for v in rounds_variants[-1] if isinstance(v.policy, FixedBudget)
        }
        pairs = confirm_pairs(cfg, targets["auto"], rows, fixed_budgets, drafters, prompts, args)
    timing = {}
    if args.timing_repeats:
        grid = [
            "bench=smoke",
            "bench.max_new_tokens=48",
            f"data_dir={cfg.data_dir}",
            f"cache_dir={cfg.cache_dir}",
        ]
        timing = timing_modes.repeat_grid(targets["auto"], "hd", "auto", args.timing_repeats, grid)

    info = environment.describe(targets["auto"].device)
    result = {
        "date": date.today().isoformat(),
        "command": "python -m benchmarks.engine_vs_generate " + shlex.join(argv or sys.argv[1:]),
        "environment": info,
        "model": targets["auto"].name,
        "model_source": targets["auto"].source,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "prompts": [label for label, _ in prompts],
        "config": OmegaConf.to_container(cfg.engine, resolve=True),
        "machine": machine,
        "variants": rows,
        "warm_up_seconds": warm_up,
        "drafters": drafters,
        "auto_budget_state": {
            v.name: v.policy.summary() for v in rounds_variants[-1] if v.name.endswith("@auto")
        },
        "pairs": pairs,
        "timing_modes": timing,
        "total_seconds": time.perf_counter() - started,
    }
    folder = Path(args.out) / environment.machine_label(info)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{result['date']}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    (folder / f"{result['date']}.md").write_text(text)
    print(text)
    print(f"written to {folder / result['date']}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Our engine against transformers' ``generate``, the cost curve, and automatic vs fixed budgets.

    python -m benchmarks.engine_vs_generate [--prompts N] [--max-new-tokens M] [--out benchmarks]

One process, one model, one thread count. Every variant (our ``ar``, ``generate``, our
``pld``, ``generate(prompt_lookup_num_tokens=10)``, each drafter at the automatic and at fixed
budgets) answers every prompt; the order of variants rotates from prompt to prompt, so the
drift of a shared machine spreads over all of them, and each is warmed up (untimed) first.
All decoding is greedy, so every variant must produce our ``ar``'s tokens; the report says
where it does. Writes ``<out>/<machine>/<date>.md`` and a JSON twin.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import torch
from omegaconf import OmegaConf

from spec_bench import environment
from spec_bench.commands import compose_config
from spec_bench.data import CATEGORIES, build_prompt, load_questions, select_questions
from spec_bench.drafters import build_drafter, known_drafters
from spec_bench.engine.budget import FixedBudget
from spec_bench.engine.auto_budget import auto_budget
from spec_bench.engine.cost import curve_path
from spec_bench.engine.decode import PHASES, Engine
from spec_bench.engine.proposal import NoDrafter
from spec_bench.errors import HarnessError
from spec_bench.models import load_target

REPO = Path(__file__).resolve().parents[1]
QUESTION_FILES = (
    REPO / "data/spec_bench/question.jsonl",
    REPO.parent / "shared/data/spec_bench/question.jsonl",
)
DRAFTERS = ("pld", "rest", "lookahead", "hd")
PROMPT_LOOKUP_TOKENS = 10  # generate's prompt lookup, with Spec-Bench's num_pred_tokens


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=6, help="Spec-Bench prompts, categories in turn")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--out", default="benchmarks", help="folder of <machine>/<date>.md")
    parser.add_argument("--drafters", default=",".join(DRAFTERS), help="those implemented are swept")
    parser.add_argument("--budgets", default="8,16,32,64", help="fixed budgets to compare with auto")
    parser.add_argument("--warmup-tokens", type=int, default=8)
    parser.add_argument("--questions", default=None, help="question.jsonl (default: data/ or the mirror)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. engine.cost_refresh=true")
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


@dataclass
class Outcome:
    tokens: list[int]
    seconds: float
    steps: int = 0  # our engine only
    budgets: list[int] = field(default_factory=list)
    proposed: list[int] = field(default_factory=list)
    phase_times: dict[str, float] = field(default_factory=dict)


class Variant:
    """One way of decoding: ``run(prompt_ids, max_new_tokens) -> Outcome``, timed from outside."""

    def __init__(self, name: str, run) -> None:
        self.name, self._run = name, run

    def __call__(self, target, prompt_ids: list[int], max_new_tokens: int) -> Outcome:
        _sync(target)
        start = time.perf_counter()
        outcome = self._run(prompt_ids, max_new_tokens)
        _sync(target)
        outcome.seconds = time.perf_counter() - start
        return outcome


def _sync(target) -> None:
    if target.device.type == "cuda":
        torch.cuda.synchronize(target.device)


def engine_variant(name: str, target, drafter, policy) -> Variant:
    engine = Engine(target, 0.0, policy)

    def run(prompt_ids, max_new_tokens):
        generation = engine.generate(prompt_ids, drafter, max_new_tokens)
        return Outcome(
            generation.tokens,
            0.0,
            generation.steps,
            generation.budgets,
            generation.proposed,
            generation.phase_times,
        )

    variant = Variant(name, run)
    variant.policy = policy
    return variant


def generate_variant(name: str, target, **kwargs) -> Variant:
    eos = sorted(target.eos_token_ids)

    @torch.inference_mode()
    def run(prompt_ids, max_new_tokens):
        input_ids = torch.tensor([prompt_ids], device=target.device)
        output = target.model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos[0],
            **kwargs,
        )
        return Outcome(output[0, len(prompt_ids) :].tolist(), 0.0)

    return Variant(name, run)


def build_variants(cfg, target, drafters: list[str], budgets: list[int]) -> tuple[list[Variant], dict]:
    variants = [
        engine_variant("ar", target, NoDrafter(), FixedBudget(0)),
        generate_variant("generate", target),
        generate_variant("generate+pld", target, prompt_lookup_num_tokens=PROMPT_LOOKUP_TOKENS),
    ]
    skipped = {}
    for name in drafters:
        if name not in known_drafters():
            skipped[name] = "no such drafter"
            continue
        drafter_cfg = compose_config([f"drafter={name}", f"cache_dir={cfg.cache_dir}"])
        try:
            drafter = build_drafter(drafter_cfg, target)
        except HarnessError as error:
            skipped[name] = str(error)
            continue
        variants.append(engine_variant(f"{name}@auto", target, drafter, auto_budget(cfg, target, drafter)))
        variants += [engine_variant(f"{name}@{b}", target, drafter, FixedBudget(b)) for b in budgets]
    return variants, skipped


def run_interleaved(variants, target, prompts, max_new_tokens: int, warmup_tokens: int) -> dict:
    for variant in variants:  # untimed: one-time costs (allocations, kernels) hit no variant
        variant(target, prompts[0][1], warmup_tokens)
    outcomes: dict[str, list[Outcome]] = {variant.name: [] for variant in variants}
    for index, (label, prompt_ids) in enumerate(prompts):
        shift = index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            outcomes[variant.name].append(variant(target, prompt_ids, max_new_tokens))
        print(f"prompt {index + 1}/{len(prompts)} ({label}, {len(prompt_ids)} tokens) done", file=sys.stderr)
    return outcomes


def summarise(outcomes: dict[str, list[Outcome]]) -> dict[str, dict]:
    reference = outcomes["ar"]
    hf_reference = outcomes["generate"]
    ar_rate = _rate(reference)
    rows = {}
    for name, runs in outcomes.items():
        steps = sum(run.steps for run in runs)
        new_tokens = sum(len(run.tokens) for run in runs)
        row = {
            "new_tokens": new_tokens,
            "seconds": sum(run.seconds for run in runs),
            "tokens_per_s": _rate(runs),
            "speedup_vs_ar": _rate(runs) / ar_rate,
            "equal_to_ar": sum(run.tokens == ref.tokens for run, ref in zip(runs, reference)),
            "equal_to_generate": sum(run.tokens == ref.tokens for run, ref in zip(runs, hf_reference)),
            "prompts": len(runs),
        }
        if steps:
            phases = {phase: sum(run.phase_times.get(phase, 0.0) for run in runs) for phase in PHASES}
            row.update(
                steps=steps,
                mean_accepted_tokens=new_tokens / steps,
                mean_verified=sum(sum(run.proposed) for run in runs) / steps,
                phase_ms_per_step={phase: 1000 * seconds / steps for phase, seconds in phases.items()},
                overhead_ms_per_step=1000 * (sum(phases.values()) - phases["forward"]) / steps,
                budgets=dict(sorted(Counter(b for run in runs for b in run.budgets).items())),
            )
        row["per_prompt"] = [{"new_tokens": len(run.tokens), "seconds": run.seconds} for run in runs]
        rows[name] = row
    return rows


def auto_vs_fixed(rows: dict[str, dict]) -> dict[str, dict]:
    """Per drafter: the automatic budget against the best fixed one of this run."""
    table = {}
    for name, row in rows.items():
        if not name.endswith("@auto"):
            continue
        drafter = name.removesuffix("@auto")
        fixed = {n: r for n, r in rows.items() if n.startswith(drafter + "@") and n != name}
        if not fixed:
            continue
        best = max(fixed, key=lambda n: fixed[n]["tokens_per_s"])
        table[drafter] = {
            "auto_tokens_per_s": row["tokens_per_s"],
            "best_fixed": best,
            "best_fixed_tokens_per_s": fixed[best]["tokens_per_s"],
            "auto_over_best_fixed": row["tokens_per_s"] / fixed[best]["tokens_per_s"],
            "auto_over_ar": row["speedup_vs_ar"],
        }
    return table


def per_prompt_ratios(rows: dict[str, dict], ours: str, theirs: str) -> list[float]:
    """Per-prompt tokens/s ratios: their spread shows this machine's timing noise."""
    return [
        (a["new_tokens"] / a["seconds"]) / (b["new_tokens"] / b["seconds"])
        for a, b in zip(rows[ours]["per_prompt"], rows[theirs]["per_prompt"])
    ]


def _rate(runs: list[Outcome]) -> float:
    return sum(len(run.tokens) for run in runs) / sum(run.seconds for run in runs)


def markdown(result: dict) -> str:
    rows, curve = result["variants"], result["latency_curve"]
    env = result["environment"]
    lines = [
        f"# Engine benchmark, {result['date']}",
        "",
        f"`{result['command']}`",
        "",
        f"- machine: {env['cpu']}{', ' + env['gpu'] if env['gpu'] else ''}; device {env['device']}, "
        f"dtype {result['dtype']}, {env['torch_threads']} torch threads",
        f"- versions: python {env['python']}, "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v),
        f"- model: {result['model']} ({result['model_source']})",
        f"- {len(result['prompts'])} prompts ({', '.join(result['prompts'])}), up to "
        f"{result['max_new_tokens']} new tokens, greedy; variants interleaved, warmed up first",
        f"- total wall time: {result['total_seconds']:.0f} s",
        "",
        "## Our engine vs transformers `generate`",
        "",
        "| ours | tokens/s | generate | tokens/s | ours / generate | greedy outputs equal |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for ours, theirs in (("ar", "generate"), ("pld@auto", "generate+pld")):
        if ours in rows:
            a, b = rows[ours], rows[theirs]
            lines.append(
                f"| `{ours}` | {a['tokens_per_s']:.2f} | `{theirs}` | {b['tokens_per_s']:.2f} | "
                f"{a['tokens_per_s'] / b['tokens_per_s']:.3f} | {a['equal_to_generate']}/{a['prompts']} |"
            )
    ar = rows["ar"]
    provenance = "read from the cache" if result["curve_cached"] else "measured now"
    spread = per_prompt_ratios(rows, "ar", "generate")
    lines += [
        "",
        f"Per prompt, `ar` / `generate` ranges over {min(spread):.3f} to {max(spread):.3f} "
        "(the same work on both sides: this is the machine's timing noise).",
        "",
        f"`generate+pld` is `generate(prompt_lookup_num_tokens={PROMPT_LOOKUP_TOKENS})`; `pld@auto` "
        "is our prompt lookup at the automatic budget. Our `ar` spends "
        f"{ar['overhead_ms_per_step']:.2f} ms per step outside the forward.",
        "",
        "## Verification latency (cost curve)",
        "",
        f"Prefix of {curve['settings']['prefix_length']} tokens, median of "
        f"{curve['settings']['repeats']}; {provenance}.",
        "",
        "| tokens verified | ms | × 1 token |",
        "| ---: | ---: | ---: |",
    ]
    base = curve["seconds"][0]
    lines += [f"| {n} | {1000 * s:.1f} | {s / base:.2f} |" for n, s in zip(curve["sizes"], curve["seconds"])]
    lines += [
        "",
        "## Budgets: speedup over our `ar`",
        "",
        "| variant | tokens/s | speedup | mean accepted tokens | mean verified | equal to `ar` | "
        "ms/step draft / forward / accept / bookkeeping | budgets chosen |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, row in rows.items():
        if "steps" not in row:
            continue
        phases = " / ".join(f"{row['phase_ms_per_step'][phase]:.1f}" for phase in PHASES)
        budgets = ", ".join(f"{b}: {n}" for b, n in row["budgets"].items()) if "@auto" in name else ""
        lines.append(
            f"| `{name}` | {row['tokens_per_s']:.2f} | {row['speedup_vs_ar']:.3f} | "
            f"{row['mean_accepted_tokens']:.2f} | {row['mean_verified']:.1f} | "
            f"{row['equal_to_ar']}/{row['prompts']} | {phases} | {budgets} |"
        )
    lines += [
        "",
        "## Automatic budget against the best fixed budget of this run",
        "",
        "| drafter | auto tokens/s | best fixed | its tokens/s | auto / best fixed | auto / `ar` |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for drafter, row in result["auto_vs_fixed"].items():
        lines.append(
            f"| `{drafter}` | {row['auto_tokens_per_s']:.2f} | `{row['best_fixed']}` | "
            f"{row['best_fixed_tokens_per_s']:.2f} | {row['auto_over_best_fixed']:.3f} | "
            f"{row['auto_over_ar']:.3f} |"
        )
    for name, reason in result["skipped"].items():
        lines.append(f"\n`{name}` skipped: {reason}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    cfg = compose_config(list(args.overrides))
    target = load_target(cfg.model, cfg.cache_dir)
    questions = (
        Path(args.questions)
        if args.questions
        else next((path for path in QUESTION_FILES if path.is_file()), QUESTION_FILES[0])
    )
    prompts = pick_prompts(target, questions, args.prompts)

    path = curve_path(target, cfg.cache_dir)
    mtime_before = path.stat().st_mtime_ns if path.is_file() else None
    curve = auto_budget(cfg, target, None).curve  # measured now unless cached with these settings
    curve_cached = mtime_before is not None and path.stat().st_mtime_ns == mtime_before
    drafters = [name for name in args.drafters.split(",") if name]
    budgets = [int(b) for b in args.budgets.split(",") if b]
    variants, skipped = build_variants(cfg, target, drafters, budgets)
    outcomes = run_interleaved(variants, target, prompts, args.max_new_tokens, args.warmup_tokens)

    info = environment.describe(target.device)
    result = {
        "date": date.today().isoformat(),
        "command": "python -m benchmarks.engine_vs_generate " + shlex.join(argv or sys.argv[1:]),
        "environment": info,
        "model": target.name,
        "model_source": target.source,
        "dtype": str(target.dtype).removeprefix("torch."),
        "max_new_tokens": args.max_new_tokens,
        "prompts": [label for label, _ in prompts],
        "config": OmegaConf.to_container(cfg.engine, resolve=True),
        "latency_curve": {"sizes": curve.sizes, "seconds": curve.seconds, "settings": curve.settings},
        "curve_cached": curve_cached,
        "variants": (rows := summarise(outcomes)),
        "auto_vs_fixed": auto_vs_fixed(rows),
        "auto_budget_state": {v.name: v.policy.summary() for v in variants if v.name.endswith("@auto")},
        "skipped": skipped,
        "total_seconds": time.perf_counter() - started,
    }
    folder = Path(args.out) / environment.machine_label(info)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{result['date']}.json").write_text(json.dumps(result, indent=2) + "\n")
    (folder / f"{result['date']}.md").write_text(markdown(result))
    print(markdown(result))
    print(f"written to {folder / result['date']}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

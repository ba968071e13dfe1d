"""The benchmark's markdown: one section per part of the run, then the targets the issues
set, each with its number and whether this run meets it."""

from __future__ import annotations

from benchmarks.timing_modes import spread
from spec_bench.engine.decode import PHASES
from spec_bench.uncertainty import ratio_of_sums

SETTLED_MAT = 1.05  # an automatic run at or below this MAT verified (almost) no draft


def table_head(columns: list[str], aligns: str) -> list[str]:
    """A markdown table's header row and rule; ``aligns`` holds ``l`` or ``r`` per column."""
    rule = " | ".join("---:" if align == "r" else "---" for align in aligns)
    return ["| " + " | ".join(columns) + " |", f"| {rule} |"]


def header(result: dict) -> list[str]:
    env = result["environment"]
    dtypes = ", ".join(
        f"{name}: {d['dtype']} ({d['kernels']})" for name, d in result["machine"]["dtypes"].items()
    )
    return [
        f"# Engine benchmark, {result['date']}",
        "",
        f"`{result['command']}`",
        "",
        f"- machine: {env['cpu']}{', ' + env['gpu'] if env['gpu'] else ''}; device {env['device']}, "
        f"{env['torch_threads']} torch threads; dtypes {dtypes}",
        "- versions: python "
        + env["python"]
        + ", "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v),
        f"- model: {result['model']} ({result['model_source']})",
        f"- {len(result['prompts'])} prompts ({', '.join(result['prompts'])}), up to "
        f"{result['max_new_tokens']} new tokens, greedy; variants interleaved in a seeded shuffled "
        "order, warmed up first"
        + (
            f"; each answer timed in {result['rounds']} rounds, the fastest kept"
            if result.get("rounds", 1) > 1
            else ""
        ),
        f"- total wall time: {result['total_seconds']:.0f} s",
    ]


def machine_lines(machine: dict) -> list[str]:
    lines = [
        "",
        "## The machine and the cost of a verification forward",
        "",
        f"Read bandwidth {machine['read_bytes_per_s'] / 1e9:.1f} GB/s. Lower bound of a forward of n "
        "tokens: max(weight bytes / bandwidth, 2 x parameters x n / peak matmul rate).",
    ]
    for name, d in machine["dtypes"].items():
        lines += [
            "",
            f"**{name}** ({d['dtype']}, kernels {d['kernels']}): "
            f"{d['weight_bytes'] / 2**20:.0f} MiB of weights, "
            f"peak matmul {d['peak_flops'] / 1e9:.0f} GFLOP/s.",
            "",
            *table_head(["tokens verified", "ms", "× 1 token", "lower bound ms", "× bound"], "rrrrr"),
        ]
        base = d["seconds"][0]
        for n, seconds, bound in zip(d["sizes"], d["seconds"], d["lower_bound"]):
            ratios = f"{seconds / base:.2f} | {1000 * bound:.1f} | {seconds / bound:.1f}"
            lines.append(f"| {n} | {1000 * seconds:.1f} | {ratios} |")
        if d.get("split"):
            lines += split_lines(d)
    return lines


def split_lines(d: dict) -> list[str]:
    """Where a forward's time goes (``benchmarks.one_token_budget``), against its bound."""
    bounds = dict(zip(d["sizes"], d["lower_bound"]))
    lines = [
        "",
        "Those forwards split, each part timed inside them (`python -m benchmarks.one_token_budget`):",
        "",
        *table_head(
            [
                "tokens",
                "forward ms",
                "linear layers ms",
                "attention ms",
                "the rest ms",
                "linear layers stream GB/s",
                "(linear + attention) × bound",
            ],
            "rrrrrrr",
        ),
    ]
    for part in d["split"]:
        n = part["tokens"]
        core = part["linear"] + part["attention"]
        over = f"{core / (1000 * bounds[n]):.1f}" if n in bounds else ""
        lines.append(
            f"| {n} | {part['forward']:.1f} | {part['linear']:.1f} | {part['attention']:.1f} | "
            f"{part['rest']:.1f} | {d['linear_weight_bytes'] / part['linear'] / 1e6:.1f} | {over} |"
        )
    return lines


def decoding_lines(rows: dict) -> list[str]:
    lines = [
        "",
        "## Decoding: tokens/s on the same prompts",
        "",
        *table_head(
            [
                "variant",
                "tokens/s",
                "× our AR",
                "MAT",
                "nodes verified",
                "equal to AR",
                "ms/step prefill / draft / forward / accept / bookkeeping",
                "budgets chosen",
            ],
            "lrrrrrll",
        ),
    ]
    for name, row in rows.items():
        mat = f"{row['mean_accepted_tokens']:.2f}" if "steps" in row else ""
        verified = f"{row['mean_verified']:.1f}" if "steps" in row else ""
        phases = " / ".join(f"{row['phase_ms_per_step'][p]:.1f}" for p in PHASES) if "steps" in row else ""
        budgets = ", ".join(f"{b}: {n}" for b, n in row.get("budgets", {}).items()) if "@auto" in name else ""
        lines.append(
            f"| `{name}` | {row['tokens_per_s']:.2f} | {row['speedup_vs_ar']:.3f} | {mat} | {verified} | "
            f"{row['equal_to_ar']}/{row['prompts']} | {phases} | {budgets} |"
        )
    return lines


def compile_lines(result: dict) -> list[str]:
    """Compiled forwards against eager ones, and what compiling cost (in the warm-up)."""
    rows, warm_up = result["variants"], result.get("warm_up_seconds", {})
    compiled = [n for n in rows if "compile" in n]
    if not compiled:
        return []
    lines = [
        "",
        "## Compiled forwards (`engine.compile`, and generate's static cache + compile)",
        "",
        *table_head(
            [
                "variant",
                "tokens/s",
                "eager counterpart",
                "its tokens/s",
                "compiled / eager",
                "warm-up s (compiling)",
            ],
            "lrlrrr",
        ),
    ]
    for name in compiled:
        eager = name.replace("+compile", "").replace("+static", "")
        if eager not in rows:
            continue
        ratio = rows[name]["tokens_per_s"] / rows[eager]["tokens_per_s"]
        lines.append(
            f"| `{name}` | {rows[name]['tokens_per_s']:.2f} | `{eager}` | "
            f"{rows[eager]['tokens_per_s']:.2f} | "
            f"{ratio:.2f} | {warm_up.get(name, float('nan')):.0f} |"
        )
    return lines


def auto_against_fixed(rows: dict, drafters: list[str]) -> dict[str, dict]:
    """Per drafter: auto against its best fixed budget, and whether auto settled at MAT 1.00
    where a fixed budget reaches MAT >= 1.1 at better than 0.9x auto's speed."""
    table = {}
    for drafter in drafters:
        auto = rows.get(f"{drafter}@auto")
        fixed = {n: r for n, r in rows.items() if n.startswith(f"{drafter}@") and not n.endswith("@auto")}
        if auto is None or not fixed:
            continue
        best = max(fixed, key=lambda n: fixed[n]["tokens_per_s"])
        working = [
            n
            for n, r in fixed.items()
            if r["mean_accepted_tokens"] >= 1.1 and r["tokens_per_s"] > 0.9 * auto["tokens_per_s"]
        ]
        interval = speed_ratio_interval(auto, fixed[best])
        held_out = fixed_chosen_on_other_prompts(fixed)
        table[drafter] = {
            "auto_over_best_fixed_interval": interval,
            "auto_tokens_per_s": auto["tokens_per_s"],
            "auto_mat": auto["mean_accepted_tokens"],
            "best_fixed": best,
            "best_fixed_tokens_per_s": fixed[best]["tokens_per_s"],
            "best_fixed_mat": fixed[best]["mean_accepted_tokens"],
            # Nodes verified a step: where auto's match the best fixed budget's, with its MAT,
            # the two did the same work and their ratio is the machine's noise.
            "auto_verified": auto.get("mean_verified"),
            "best_fixed_verified": fixed[best].get("mean_verified"),
            "auto_over_best_fixed": auto["tokens_per_s"] / fixed[best]["tokens_per_s"],
            "settled_at_ar_while_a_budget_works": auto["mean_accepted_tokens"] <= SETTLED_MAT
            and bool(working),
            "working_fixed": working,
        }
        if held_out is not None:
            table[drafter].update(
                held_out_tokens_per_s=held_out["tokens_per_s"],
                held_out_budgets=held_out["chosen"],
                auto_over_held_out=auto["tokens_per_s"] / held_out["tokens_per_s"],
                auto_over_held_out_interval=speed_ratio_interval(auto, held_out),
            )
    return table


def fixed_chosen_on_other_prompts(fixed: dict) -> dict | None:
    """The fixed budget as a user would pick it without seeing the answer: for each prompt,
    the budget fastest on all the other prompts (leave one out), timed on that prompt. The
    fastest budget over all prompts was chosen by the same timings it is then scored by, so
    it wins by chance as well as by merit (the winner's curse); this one does not. None
    without per-prompt timings."""
    per_prompt = {name: row.get("per_prompt") for name, row in fixed.items()}
    counts = {len(p) for p in per_prompt.values() if p}
    if len(counts) != 1 or len(per_prompt) != sum(bool(p) for p in per_prompt.values()):
        return None
    prompts = counts.pop()
    if prompts < 2:
        return None
    chosen, picked = [], []
    for held in range(prompts):
        name = max(per_prompt, key=lambda n, held=held: _rate_without(per_prompt[n], held))
        chosen.append(name)
        picked.append(per_prompt[name][held])
    return {"chosen": chosen, "per_prompt": picked, "tokens_per_s": _rate(picked)}


def _rate_without(per_prompt: list[dict], held: int) -> float:
    return _rate([p for index, p in enumerate(per_prompt) if index != held])


def _rate(per_prompt: list[dict]) -> float:
    """Tokens per second over prompts: all their tokens over all their seconds."""
    return sum(p["new_tokens"] for p in per_prompt) / sum(p["seconds"] for p in per_prompt)


def speed_ratio_interval(row: dict, other: dict) -> list[float] | None:
    """95% interval of ``row``'s speed over ``other``'s, a paired bootstrap over prompts (each
    prompt's time for ``other`` scaled to ``row``'s token count); None without per-prompt data.
    The variants of one prompt run together (back to back, or in lockstep), so a slow moment
    hits both."""
    mine, theirs = row.get("per_prompt"), other.get("per_prompt")
    if not mine or not theirs or len(mine) != len(theirs):
        return None
    scaled = [t["seconds"] * m["new_tokens"] / max(t["new_tokens"], 1) for m, t in zip(mine, theirs)]
    estimate = ratio_of_sums(scaled, [m["seconds"] for m in mine])
    return [estimate.low, estimate.high]


def auto_lines(table: dict) -> list[str]:
    lines = [
        "",
        "## The automatic budget against each drafter's best fixed budget",
        "",
        *table_head(
            [
                "drafter",
                "auto tokens/s",
                "auto MAT",
                "best fixed",
                "its tokens/s",
                "its MAT",
                "nodes a step: auto / it",
                "auto / best fixed",
                "95% interval",
                "auto / fixed chosen on the other prompts",
                "95% interval ",
                "auto at MAT 1.00 where a budget works?",
            ],
            "lrrlrrlrlrll",
        ),
    ]
    for drafter, row in table.items():
        settled = (
            "**yes**: " + ", ".join(row["working_fixed"])
            if row["settled_at_ar_while_a_budget_works"]
            else "no"
        )
        interval = row.get("auto_over_best_fixed_interval")
        shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "-"
        held_out = f"{row['auto_over_held_out']:.3f}" if "auto_over_held_out" in row else "-"
        held_interval = row.get("auto_over_held_out_interval")
        held_shown = f"[{held_interval[0]:.3f}, {held_interval[1]:.3f}]" if held_interval else "-"
        verified = (
            f"{row['auto_verified']:.2f} / {row['best_fixed_verified']:.2f}"
            if row.get("auto_verified") is not None and row.get("best_fixed_verified") is not None
            else "-"
        )
        lines.append(
            f"| `{drafter}` | {row['auto_tokens_per_s']:.2f} | {row['auto_mat']:.2f} | "
            f"`{row['best_fixed']}` | {row['best_fixed_tokens_per_s']:.2f} | {row['best_fixed_mat']:.2f} | "
            f"{verified} | {row['auto_over_best_fixed']:.3f} | {shown} | {held_out} | {held_shown} | "
            f"{settled} |"
        )
    lines += [
        "",
        "The best fixed budget is the fastest of several noisy measurements, so it is favoured by",
        "chance; the interval (a paired bootstrap over the prompts) says whether auto is slower",
        "beyond that noise: only an interval entirely below 1.0 is. The fixed budget chosen on the",
        "other prompts (for each prompt, the budget fastest on the rest, timed on that prompt) is",
        "the one a user could pick in advance, free of that luck. Where auto verified as many",
        "nodes a step as the best fixed budget, at its MAT, the two did the same work, and their",
        "ratio differs from 1.0 by the machine's noise and the policy's own bookkeeping.",
    ]
    return lines


AA_COPY = "ar#2"  # AR again, beside itself in the re-timed pairs: identical work timed twice


def paired_verdicts(pairs: dict) -> dict[str, dict]:
    """Per drafter, from the pairs re-timed after the grid (``confirm_pairs``): auto over the
    best fixed budget with its interval; under ``AA_COPY``, AR over its copy."""
    rows = pairs.get("variants") or {}
    compared = {AA_COPY: ("ar", AA_COPY)} | {
        drafter: (f"{drafter}@auto", label) for drafter, label in pairs.get("best_fixed", {}).items()
    }
    table = {}
    for key, (mine, theirs) in compared.items():
        if mine not in rows or theirs not in rows:
            continue
        table[key] = {
            "versus": theirs,
            "tokens_per_s": rows[mine]["tokens_per_s"],
            "versus_tokens_per_s": rows[theirs]["tokens_per_s"],
            "ratio": rows[mine]["tokens_per_s"] / rows[theirs]["tokens_per_s"],
            "interval": speed_ratio_interval(rows[mine], rows[theirs]),
            "same_budgets": same_budgets(rows[mine], rows[theirs]),
        }
    return table


def same_budgets(mine: dict, theirs: dict) -> bool | None:
    """Whether two variants verified each budget in as many steps: the same work, unless the
    order differed, so their ratio is the timing's noise and the policy's own bookkeeping.
    None where either kept no budget counts."""
    if not mine.get("budgets") or not theirs.get("budgets"):
        return None
    return mine["budgets"] == theirs["budgets"]


def pair_lines(pairs: dict, verdicts: dict) -> list[str]:
    if not verdicts:
        return []
    lines = [
        "",
        "## Auto beside its best fixed budget, re-timed in pairs",
        "",
        f"After the grid, {pairs['rounds']} fresh rounds: each drafter's auto and the fixed budget",
        "fastest in the grid answer each prompt in lockstep, a step each in turn (the faster of each",
        "one's answers to a prompt kept, as above). The budget was chosen before these timings, so",
        "chance no longer favours it, and a slow stretch of the machine meets both. The first row",
        "is AR beside a copy of itself: identical work, so its distance from 1.0 is how far apart",
        "this run times the same work. Same budgets: auto verified each budget in as many steps as",
        "the fixed one did (the same work, unless in another order), so that ratio too is the noise.",
        "",
        *table_head(
            ["compared", "tokens/s", "against", "its tokens/s", "ratio", "95% interval", "same budgets"],
            "lrlrrll",
        ),
    ]
    for key, row in verdicts.items():
        name = "`ar`" if key == AA_COPY else f"`{key}@auto`"
        interval = row["interval"]
        shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "-"
        same = {True: "yes", False: "no"}.get(row.get("same_budgets"), "-")
        lines.append(
            f"| {name} | {row['tokens_per_s']:.2f} | `{row['versus']}` | "
            f"{row['versus_tokens_per_s']:.2f} | {row['ratio']:.3f} | {shown} | {same} |"
        )
    return lines


def timing_lines(timing: dict) -> list[str]:
    if not timing:
        return []
    lines = [
        "",
        "## AR timed in its own run (separate) or beside each question (paired)",
        "",
        f"HD at the automatic budget, bench=smoke (6 questions, 48 tokens), {len(timing['paired'])} repeats "
        "of the same grid each; spread = (max - min) / mean of the overall speedups.",
        "",
        *table_head(["timing", "overall speedup per repeat", "spread"], "llr"),
    ]
    for mode, values in timing.items():
        lines.append(f"| {mode} | {', '.join(f'{v:.3f}' for v in values)} | {100 * spread(values):.1f}% |")
    return lines


def not_slower_beyond_noise(what: str, interval: list[float] | None) -> list[tuple[str, float, str, bool]]:
    """The check that a ratio's 95% interval reaches 1.0 (none without an interval)."""
    if not interval:
        return []
    return [
        (
            f"{what}, upper end of its 95% interval",
            interval[1],
            ">= 1.0 (not slower beyond noise)",
            interval[1] >= 1.0,
        )
    ]


def targets(result: dict, auto: dict, paired: dict | None = None) -> list[tuple[str, float, str, bool]]:
    """(what, measured, goal, met) for each target of the issues this run can check."""
    rows, machine = result["variants"], result["machine"]["dtypes"]
    paired = paired or {}
    checks = []
    if "ar_fp32" in rows and machine["auto"]["dtype"] != "float32":
        ratio = rows["ar"]["tokens_per_s"] / rows["ar_fp32"]["tokens_per_s"]
        checks.append((f"{machine['auto']['dtype']} AR / fp32 AR", ratio, ">= 1.5", ratio >= 1.5))
    ratio = rows["ar"]["tokens_per_s"] / rows["generate"]["tokens_per_s"]
    checks.append(("our AR / generate, same dtype", ratio, ">= 1.0", ratio >= 1.0))
    if "generate+our-kernels" in rows:
        ratio = rows["ar"]["tokens_per_s"] / rows["generate+our-kernels"]["tokens_per_s"]
        checks.append(("our AR / generate on our kernels (the loop alone)", ratio, "(reported)", True))
    d = machine["auto"]
    over_bound = d["seconds"][0] / d["lower_bound"][0]
    checks.append(("t(1) / bandwidth bound", over_bound, "<= 2.5", over_bound <= 2.5))
    if 16 in d["sizes"]:
        ratio = d["seconds"][d["sizes"].index(16)] / d["seconds"][0]
        checks.append(("t(16) / t(1)", ratio, "<= 1.4", ratio <= 1.4))
        # 16 tokens' arithmetic against one token's reads: the least t(16) / t(1) can be once
        # t(1) sits on its bound (what the row above asks and the t(1) row pushes toward).
        ratio = d["lower_bound"][d["sizes"].index(16)] / d["lower_bound"][0]
        checks.append(("t(16) / t(1) with both on their bounds", ratio, "(reported)", True))
    autos = {n: r for n, r in rows.items() if n.endswith("@auto")}  # compiled ones included
    if autos:
        best = max(autos, key=lambda n: autos[n]["tokens_per_s"])
        for baseline, goal in (("generate", 1.5), ("generate+pld", 1.3)):
            ratio = autos[best]["tokens_per_s"] / rows[baseline]["tokens_per_s"]
            checks.append(
                (f"best drafter at auto (`{best}`) / {baseline}", ratio, f">= {goal}", ratio >= goal)
            )
    if "generate+static+compile" in rows and autos:
        best = max(autos, key=lambda n: autos[n]["tokens_per_s"])
        ratio = autos[best]["tokens_per_s"] / rows["generate+static+compile"]["tokens_per_s"]
        checks.append(
            (f"best drafter at auto (`{best}`) / generate+static+compile", ratio, "(reported)", True)
        )
    for drafter, row in auto.items():
        checks.append(
            (
                f"`{drafter}`: auto / best fixed",
                row["auto_over_best_fixed"],
                ">= 1.0",
                row["auto_over_best_fixed"] >= 1.0,
            )
        )
        checks += not_slower_beyond_noise(
            f"`{drafter}`: auto / best fixed", row.get("auto_over_best_fixed_interval")
        )
        if "auto_over_held_out" in row:
            checks.append(
                (
                    f"`{drafter}`: auto / fixed budget chosen on the other prompts",
                    row["auto_over_held_out"],
                    ">= 1.0",
                    row["auto_over_held_out"] >= 1.0,
                )
            )
        if drafter in paired:
            ratio = paired[drafter]["ratio"]
            checks.append(
                (f"`{drafter}`: auto / best fixed, re-timed in pairs", ratio, ">= 1.0", ratio >= 1.0)
            )
            checks += not_slower_beyond_noise(
                f"`{drafter}`: auto / best fixed, re-timed in pairs", paired[drafter]["interval"]
            )
        settled = row["settled_at_ar_while_a_budget_works"]
        checks.append(
            (
                f"`{drafter}`: auto not at MAT 1.00 where a budget works",
                row["auto_mat"],
                "MAT > 1.05 or none works",
                not settled,
            )
        )
    if AA_COPY in paired:
        ratio = paired[AA_COPY]["ratio"]
        checks.append(("AR / AR again, identical work re-timed in pairs", ratio, "(reported)", True))
    timing = result.get("timing_modes")
    if timing:
        checks.append(
            ("paired timing spread", spread(timing["paired"]), "<= 0.02", spread(timing["paired"]) <= 0.02)
        )
    return checks


def markdown(result: dict) -> str:
    rows = result["variants"]
    auto = auto_against_fixed(rows, result["drafters"])
    pairs = result.get("pairs") or {}
    paired = paired_verdicts(pairs)
    lines = header(result) + machine_lines(result["machine"]) + decoding_lines(rows) + auto_lines(auto)
    lines += pair_lines(pairs, paired)
    lines += compile_lines(result)
    lines += timing_lines(result.get("timing_modes") or {})
    lines += ["", "## Targets", "", *table_head(["target", "this run", "goal", "met"], "lrll")]
    for what, value, goal, met in targets(result, auto, paired):
        lines.append(f"| {what} | {value:.3f} | {goal} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"

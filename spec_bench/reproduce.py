"""make reproduce: every drafter x temperature through one Hydra multirun, then the full
report (tables.md/.tex, figures, summary.csv in <out>/<bench>/<model>/report/), whose
Markdown tables are printed.

    python -m spec_bench.reproduce --model smollm2_135m --bench quick

Drafters that are not implemented yet are skipped with a note, never silently. Extra
arguments after ``--`` go to every run (e.g. ``-- engine.budget=16``).

``--ablations W,S,L,WS`` also runs HD with only those databases, in that order, as the
paper's ablation (run names ``hd-W``, ...; the full ``hd`` run is WSL).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from spec_bench.drafters import is_implemented

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spec_bench.reproduce", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", default="smollm2_135m", help="a conf/model/ name")
    parser.add_argument("--bench", default="quick", help="a conf/bench/ profile: smoke, quick, paper")
    parser.add_argument(
        "--drafters", default="ar,pld,rest,lookahead,hd", help="comma-separated; ar is always run"
    )
    parser.add_argument("--temperatures", default="0,1", help="comma-separated")
    parser.add_argument("--out", default="runs", help="runs root")
    parser.add_argument("--launcher", default=None, help="hydra/launcher config, e.g. local or slurm")
    parser.add_argument(
        "--ablations",
        default="",
        help="comma-separated HD database orders to run as well, e.g. W,S,L,WS",
    )
    parser.add_argument("extra", nargs="*", help="more Hydra overrides for every run")
    args = parser.parse_args(argv)
    ablations = [order.strip().upper() for order in args.ablations.split(",") if order.strip()]
    for order in ablations:
        if not order or set(order) - set("WSL") or len(set(order)) != len(order):
            parser.error(f"--ablations: '{order}' is not an order of the databases W, S and L")

    wanted = [d for d in dict.fromkeys(["ar", *args.drafters.split(",")]) if d]
    drafters = [name for name in wanted if is_implemented(name)]
    skipped = [
        f"note: drafter '{name}' is not implemented yet; skipped" for name in wanted if name not in drafters
    ]
    for note in skipped:
        print(note, file=sys.stderr)

    common = [
        f"temperature={args.temperatures}",
        f"model={args.model}",
        f"bench={args.bench}",
        f"out_dir={args.out}",
        *args.extra,
    ]
    if args.launcher:
        common.append(f"hydra/launcher={args.launcher}")
    sweeps = [[f"drafter={','.join(drafters)}", *common]]
    # One sweep per ablation: each order needs its own run name, and Hydra sweeps are products.
    sweeps += [
        ["drafter=hd", f"drafter.order=[{','.join(order)}]", f"run_name=hd-{order}", *common]
        for order in ablations
    ]
    for overrides in sweeps:
        command = [sys.executable, str(REPO / "run.py"), "--multirun", *overrides]
        print("+ " + " ".join(command), flush=True)
        status = subprocess.call(command, cwd=REPO)
        if status != 0:
            return status
    root = Path(args.out) / args.bench / args.model
    status = subprocess.call([sys.executable, "-m", "spec_bench.report", str(root)], cwd=REPO)
    # Again below the tables, where a reader looks for what is missing from them.
    for note in skipped:
        print(note, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

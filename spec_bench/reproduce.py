"""make reproduce: AR once, then every drafter x temperature at each budget mode through Hydra
multiruns, then the full report (tables.md/.tex, figures, summary.csv in
<out>/<bench>/<model>/report/), whose Markdown tables are printed.

    python -m spec_bench.reproduce --model smollm2_135m --bench quick
    python -m spec_bench.reproduce --drafters hd,hd_fixed --ablations hd-WS,hd+dedup

``--budgets paper,auto`` (the default) runs every drafter as its authors verify (``paper``)
and at the cost-aware budget (``auto``); the report shows the two blocks side by side, AR
once. ``--ablations`` names ``conf/ablation/`` files, each run as HD at the paper budget
(``hd-WS``: the databases W and S only; ``hd+dedup``: one fix of the official behaviour).
Extra arguments go to every run (e.g. ``engine.max_budget=32``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spec_bench.commands import doc_parser
from spec_bench.drafters import known_drafters

REPO = Path(__file__).resolve().parents[1]
CONF_ABLATIONS = REPO / "conf" / "ablation"
PUBLISHED = "pld,rest,lookahead,hd"


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = doc_parser("python -m spec_bench.reproduce", __doc__)
    parser.add_argument("--model", default="smollm2_135m", help="a conf/model/ name")
    parser.add_argument("--bench", default="quick", help="a conf/bench/ profile: smoke, quick, paper")
    parser.add_argument(
        "--drafters", default=PUBLISHED, help="comma-separated conf/drafter/ names; ar always runs"
    )
    parser.add_argument("--temperatures", default="0,1", help="comma-separated")
    parser.add_argument("--budgets", default="paper,auto", help="engine.budget modes: paper, auto, integers")
    parser.add_argument("--out", default="runs", help="runs root")
    parser.add_argument("--launcher", default=None, help="hydra/launcher config, e.g. local or slurm")
    parser.add_argument("--ablations", default="", help="comma-separated conf/ablation/ names")
    parser.add_argument("extra", nargs="*", help="more Hydra overrides for every run")
    args = parser.parse_args(argv)

    drafters = [name for name in comma_list(args.drafters) if name != "ar"]
    unknown = [name for name in drafters if name not in known_drafters()]
    if unknown:
        parser.error(f"unknown drafter(s) {', '.join(unknown)}; choose from {', '.join(known_drafters())}")
    ablations = comma_list(args.ablations)
    missing = [name for name in ablations if not (CONF_ABLATIONS / f"{name}.yaml").is_file()]
    if missing:
        known = sorted(path.stem for path in CONF_ABLATIONS.glob("*.yaml"))
        parser.error(f"unknown ablation(s) {', '.join(missing)}; choose from {', '.join(known)}")
    budgets = comma_list(args.budgets)
    bad = [b for b in budgets if b not in ("paper", "auto") and not b.isdigit()]
    if bad or not budgets:
        parser.error(f"--budgets takes paper, auto or integers >= 0; got {args.budgets}")

    common = [
        f"temperature={args.temperatures}",
        f"model={args.model}",
        f"bench={args.bench}",
        f"out_dir={args.out}",
        *args.extra,
    ]
    if args.launcher:
        common.append(f"hydra/launcher={args.launcher}")
    # AR verifies nothing, so it runs once whatever the budgets (one folder, one reference).
    sweeps = [["drafter=ar", *common]]
    if drafters:
        sweeps.append([f"drafter={','.join(drafters)}", f"engine.budget={','.join(budgets)}", *common])
    if ablations:
        sweeps.append(["drafter=hd", f"ablation={','.join(ablations)}", "engine.budget=paper", *common])
    for overrides in sweeps:
        command = [sys.executable, str(REPO / "run.py"), "--multirun", *overrides]
        print("+ " + " ".join(command), flush=True)
        status = subprocess.call(command, cwd=REPO)
        if status != 0:
            return status
    root = Path(args.out) / args.bench / args.model
    return subprocess.call([sys.executable, "-m", "spec_bench.report", str(root)], cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())

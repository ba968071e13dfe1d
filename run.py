"""Decode Spec-Bench with one model, drafter and temperature.

    python run.py drafter=hd model=vicuna13b temperature=0 bench=quick
    python run.py --multirun drafter=ar,pld temperature=0,1

Results go to runs/<bench>/<model>/<drafter>/t<temperature>/ (answers.jsonl, config.yaml,
environment.json); `python -m spec_bench.report runs` summarises them.
"""

from __future__ import annotations

import sys
from pathlib import Path

CONF = Path(__file__).resolve().parent / "conf"
CHOICE_GROUPS = ("model", "drafter", "bench")


def check_choices(argv: list[str]) -> str | None:
    """Hydra's own message for an unknown choice is a multi-line traceback-like block;
    name the bad value and the valid ones in one line instead."""
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in CHOICE_GROUPS:
            continue
        known = sorted(path.stem for path in (CONF / key).glob("*.yaml"))
        for choice in value.split(","):
            if choice and choice not in known:
                return f"unknown {key} '{choice}'; choose one of {', '.join(known)}"
    return None


def main() -> None:
    problem = check_choices(sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)

    import hydra

    import spec_bench  # noqa: F401  (registers the config resolvers before Hydra composes)

    @hydra.main(config_path="conf", config_name="config", version_base="1.3")
    def run(cfg) -> None:
        from spec_bench.cli import run_one

        run_one(cfg)

    run()


if __name__ == "__main__":
    main()

"""Build (or show) HD's model database S for a target model.

    python -m hd.build_model_db --model smollm2_135m               # LIMA prompts, offline
    python -m hd.build_model_db --model vicuna7b --corpus oasst1 --limit 10000 --max-new-tokens 512

The target answers the corpus's prompts greedily in batches; the result is cached under
<cache_dir>/model_db/, keyed by model, tokenizer, corpus and settings, and runs with
drafter=hd find it there (building it themselves when it is missing). Spec-Bench's
questions are never among the prompts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spec_bench.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    summary, _, details = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m hd.build_model_db",
        description=summary,
        epilog=details,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="smollm2_135m", help="a conf/model/ name")
    parser.add_argument("--corpus", default=None, help="lima, oasst1 or a JSON/JSONL chat file")
    parser.add_argument("--limit", type=int, default=None, help="prompts to answer (default: the config's)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="tokens per answer")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("overrides", nargs="*", help="more config overrides, e.g. model.path=/weights")
    args = parser.parse_args(argv)

    overrides = [f"model={args.model}", "drafter=hd"]
    for field, value in (
        ("corpus", args.corpus),
        ("limit", args.limit),
        ("max_new_tokens", args.max_new_tokens),
        ("batch_size", args.batch_size),
    ):
        if value is not None:
            overrides.append(f"drafter.model_db.{field}={value}")
    try:
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*overrides, *args.overrides])
        from hd.model_db import model_db_for
        from spec_bench.models import load_target

        db = model_db_for(cfg, load_target(cfg.model, cfg.cache_dir), int(cfg.drafter.level))
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"ok: {len(db):,} n-grams for {len(db.entries):,} first tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())

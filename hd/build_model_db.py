"""Build (or show) HD's model database S for a target model.

    python -m hd.build_model_db --model smollm2_135m               # LIMA prompts, offline
    python -m hd.build_model_db --model vicuna7b model_db=oasst1   # the paper's: OASST1, 1,024 tokens
    python -m hd.build_model_db --model vicuna7b --corpus oasst1 --limit 10000 --max-new-tokens 512

The target answers the corpus's prompts greedily in batches; the result is cached under
<cache_dir>/model_db/, keyed by model, tokenizer, corpus and settings, and runs with
drafter=hd find it there (building it themselves when it is missing). Spec-Bench's
questions are never among the prompts.
"""

from __future__ import annotations

import sys

from spec_bench.commands import compose_config, doc_parser
from spec_bench.errors import HarnessError


def main(argv: list[str] | None = None) -> int:
    parser = doc_parser("python -m hd.build_model_db", __doc__)
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
            overrides.append(f"model_db.{field}={value}")
    try:
        cfg = compose_config([*overrides, *args.overrides])
        from hd.model_db import open_run_model_db
        from spec_bench.drafters import run_resources
        from spec_bench.models import load_target

        resources = run_resources(cfg, load_target(cfg.model, cfg.cache_dir))
        db = open_run_model_db(resources, int(cfg.drafter.sources.S.level))
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"ok: {len(db):,} n-grams for {len(db.entries):,} first tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build (or show) the retrieval datastore REST and HD's statistics database read.

    python -m spec_bench.datastore --model smollm2_135m --corpus lima
    python -m spec_bench.datastore --model vicuna7b --corpus ultrachat --limit 100000
    python -m spec_bench.datastore --backend draftretriever   # the PyPI package's index

The index is cached under <cache_dir>/datastore/, keyed by backend, tokenizer, corpus and limit;
runs find it there (and build it themselves when it is missing). Spec-Bench's questions
are excluded from the corpus.
"""

from __future__ import annotations

import json
import sys

from spec_bench.commands import compose_config, doc_parser
from spec_bench.errors import HarnessError


def main(argv: list[str] | None = None) -> int:
    parser = doc_parser("python -m spec_bench.datastore", __doc__)
    parser.add_argument("--model", default="smollm2_135m", help="a conf/model/ name (its tokenizer is used)")
    parser.add_argument("--corpus", default="lima", help="lima, ultrachat, oasst1 or a JSON/JSONL file")
    parser.add_argument(
        "--backend",
        default="suffix_array",
        help="suffix_array (REST's retriever, default) or draftretriever (the PyPI package's table)",
    )
    parser.add_argument("--limit", type=int, default=None, help="conversations to index (default: all)")
    parser.add_argument("overrides", nargs="*", help="more config overrides, e.g. data_dir=/data")
    args = parser.parse_args(argv)

    overrides = [
        f"model={args.model}",
        f"datastore.corpus={args.corpus}",
        f"datastore.backend={args.backend}",
        f"datastore.limit={'null' if args.limit is None else args.limit}",
        *args.overrides,
    ]
    try:
        cfg = compose_config(overrides)
        from spec_bench.datastore.store import DatastoreSettings, open_datastore
        from spec_bench.drafters import benchmark_turns
        from spec_bench.models import load_tokenizer

        settings = DatastoreSettings.from_config(cfg.datastore)
        tokenizer = load_tokenizer(cfg.model, cfg.cache_dir)
        index = open_datastore(
            settings, tokenizer, cfg.cache_dir, cfg.data_dir, benchmark_turns(cfg.questions)
        )
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    meta_file = index.path.parent / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    print(f"ok {index.path}")
    if meta:
        print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fetch Spec-Bench's questions (and the offline LIMA corpus) into a data folder.

    python -m spec_bench.data.fetch --dest data [--mirror DIR]

Copies from a local mirror (``--mirror``, else ``$SPEC_BENCH_MIRROR``, else ``../shared/data``
beside the repository when it exists); without one, downloads the questions from
Spec-Bench's public repository. Third-party data is never committed to this project.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import urllib.request
from pathlib import Path

from spec_bench.data.questions import load_questions
from spec_bench.errors import HarnessError

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = Path("spec_bench") / "question.jsonl"
LIMA = Path("corpora") / "lima.json"
QUESTIONS_URL = "https://raw.githubusercontent.com/hemingkx/Spec-Bench/main/data/spec_bench/question.jsonl"


def default_mirror() -> Path | None:
    configured = os.environ.get("SPEC_BENCH_MIRROR")
    if configured:
        return Path(configured)
    shared = REPO.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def _copy(source: Path, target: Path) -> None:
    if target.exists() and target.stat().st_size == source.stat().st_size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as handle:
            shutil.copyfileobj(response, handle)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise HarnessError(
            f"cannot download {url} ({error}); set SPEC_BENCH_MIRROR to a local copy"
        ) from None
    os.replace(tmp, target)


def fetch(dest: str | Path, mirror: str | Path | None = None) -> list[Path]:
    """Put the question file (and LIMA when the mirror has it) under ``dest``."""
    dest = Path(dest)
    mirror = Path(mirror) if mirror else default_mirror()
    written = []
    if mirror is not None:
        if not (mirror / QUESTIONS).is_file():
            raise HarnessError(f"mirror {mirror} has no {QUESTIONS}")
        load_questions(mirror / QUESTIONS)  # refuse a corrupt source before copying it
        _copy(mirror / QUESTIONS, dest / QUESTIONS)
        written.append(dest / QUESTIONS)
        if (mirror / LIMA).is_file():
            _copy(mirror / LIMA, dest / LIMA)
            written.append(dest / LIMA)
    else:
        if not (dest / QUESTIONS).is_file():
            _download(QUESTIONS_URL, dest / QUESTIONS)
        written.append(dest / QUESTIONS)
        print(
            "note: the offline LIMA corpus comes only from a mirror; REST/HD databases can be "
            "built from UltraChat/OASST1 with internet (corpus=ultrachat)",
            file=sys.stderr,
        )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spec_bench.data.fetch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dest", default="data", help="data folder to fill (default: data)")
    parser.add_argument(
        "--mirror",
        default=None,
        help="local copy of Spec-Bench data (default: $SPEC_BENCH_MIRROR or ../shared/data)",
    )
    args = parser.parse_args(argv)
    try:
        for path in fetch(args.dest, args.mirror):
            print(f"ok {path}")
    except HarnessError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

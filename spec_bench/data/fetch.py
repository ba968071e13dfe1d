"""Fetch Spec-Bench's questions and the offline LIMA corpus into a data folder.

    python -m spec_bench.data.fetch --dest data [--mirror DIR]

Sources, first found wins: --mirror, $SPEC_BENCH_MIRROR, ../shared/data beside the repository.
A mirror holds spec_bench/question.jsonl and corpora/lima.json, which are copied. Without one,
the questions are downloaded from Spec-Bench's public repository (the LIMA corpus is then
unavailable; REST/HD databases can be built from UltraChat through `datasets` online).
Files already present with the same size are kept; the question file is always validated.
Third-party data is fetched, never committed to this project.
"""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from pathlib import Path

from spec_bench.commands import doc_parser
from spec_bench.data.questions import load_questions
from spec_bench.errors import HarnessError
from spec_bench.files import replaced_atomically

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = Path("spec_bench") / "question.jsonl"
LIMA = Path("corpora") / "lima.json"
QUESTIONS_URL = "https://raw.githubusercontent.com/hemingkx/Spec-Bench/main/data/spec_bench/question.jsonl"
DOWNLOAD_TIMEOUT_S = 60


def default_mirror() -> Path | None:
    """$SPEC_BENCH_MIRROR when set, else ../shared/data beside the repository when it exists."""
    configured = os.environ.get("SPEC_BENCH_MIRROR")
    if configured:
        return Path(configured)
    shared = REPO.parent / "shared" / "data"
    return shared if shared.is_dir() else None


def _copy(source: Path, target: Path) -> None:
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(target) as tmp:
        shutil.copyfile(source, tmp)  # content only: a read-only mirror must not make dest read-only


def _download_questions(target: Path) -> None:
    if target.is_file():
        return  # the remote size is unknown before downloading; the caller validates what is there
    target.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(target) as tmp:
        try:
            with urllib.request.urlopen(QUESTIONS_URL, timeout=DOWNLOAD_TIMEOUT_S) as response:
                tmp.write_bytes(response.read())
        except OSError as error:  # URLError, HTTPError and timeouts are all OSErrors
            raise HarnessError(
                f"cannot download {QUESTIONS_URL} ({error}); pass --mirror or set SPEC_BENCH_MIRROR"
            ) from None
        try:
            load_questions(tmp)  # a bad download must not land under its final name
        except HarnessError as error:
            raise HarnessError(f"{QUESTIONS_URL} is not a valid question file: {error}") from None


def _from_mirror(dest: Path, mirror: Path) -> list[Path]:
    if not (mirror / QUESTIONS).is_file():
        raise HarnessError(f"mirror {mirror} has no {QUESTIONS}")
    load_questions(mirror / QUESTIONS)  # refuse a corrupt source before copying it
    written = []
    for relative in (QUESTIONS, LIMA):
        if (mirror / relative).is_file():
            _copy(mirror / relative, dest / relative)
            written.append(dest / relative)
        else:
            print(f"note: mirror {mirror} has no {relative}; skipped", file=sys.stderr)
    return written


def fetch(dest: str | Path, mirror: str | Path | None = None) -> list[Path]:
    """Put the question file (and LIMA when a mirror has it) under ``dest``; return their paths."""
    dest = Path(dest)
    source = Path(mirror) if mirror else default_mirror()
    try:
        if source is not None:
            written = _from_mirror(dest, source)
        else:
            _download_questions(dest / QUESTIONS)
            written = [dest / QUESTIONS]
            print(
                "note: the offline LIMA corpus is only available from a mirror (--mirror); REST/HD "
                "databases can be built from UltraChat via `datasets` with internet",
                file=sys.stderr,
            )
    except OSError as error:  # unwritable dest, dest is a file, disk full, ...
        raise HarnessError(f"cannot write under {dest}: {error}") from None
    # Also catches a same-size but different file that was kept above.
    load_questions(dest / QUESTIONS)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = doc_parser("python -m spec_bench.data.fetch", __doc__)
    parser.add_argument("--dest", default="data", help="data folder to fill (default: data)")
    parser.add_argument(
        "--mirror",
        default=None,
        metavar="DIR",
        help="local copy holding spec_bench/question.jsonl and corpora/lima.json "
        "(default: $SPEC_BENCH_MIRROR, else ../shared/data beside the repository)",
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

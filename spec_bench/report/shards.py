"""One run's records with its shards merged, refusing anything that would skew the numbers.

``bench.shard=i/n`` runs write ``answers.shard-i-of-n.jsonl`` into the run folder they
share. A category mean over a merge that lost a shard, or counted a question twice, looks
like any other number, so the report refuses such a merge in one line instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

from spec_bench.data import load_questions, select_questions
from spec_bench.errors import HarnessError
from spec_bench.records import read_records

SHARD_FILE = re.compile(r"answers\.shard-(\d+)-of-(\d+)\.jsonl")


def profile_question_ids(folder: Path) -> list[int] | None:
    """The question ids the run's bench profile selects, in profile order; None when the
    question file it was run with is not on this machine."""
    cfg = OmegaConf.load(Path(folder) / "config.yaml")
    try:
        questions = load_questions(cfg.questions)
    except HarnessError:
        return None
    return [q.question_id for q in select_questions(questions, cfg.bench.get("per_category"))]


def shard_files(folder: Path) -> tuple[int | None, dict[int, Path]]:
    """The shard count and each shard's file; (None, {}) for an unsharded run."""
    counts, files = set(), {}
    for path in sorted(Path(folder).glob("answers.shard-*.jsonl")):
        match = SHARD_FILE.fullmatch(path.name)
        if match is None:
            continue
        index, count = int(match[1]), int(match[2])
        counts.add(count)
        files[index] = path
    if len(counts) > 1:
        raise HarnessError(f"{folder} mixes shard counts {sorted(counts)}; keep the files of one split only")
    return (counts.pop() if counts else None), files


def read_run(folder: Path) -> list[dict]:
    """Every record of a run folder; for a sharded run, all shards merged and checked
    against the profile: no question twice, no shard or question missing."""
    folder = Path(folder)
    count, files = shard_files(folder)
    records, seen_in = [], {}
    for path in sorted(folder.glob("answers*.jsonl")):
        for record in read_records(path):
            key = (record["question_id"], record.get("repeat", 0))
            if key in seen_in:
                repeat = f" (repeat {key[1]})" if key[1] else ""
                raise HarnessError(
                    f"{folder}: question {key[0]}{repeat} is in both {seen_in[key]} and "
                    f"{path.name}; delete the stale copy"
                )
            seen_in[key] = path.name
            records.append(record)
    if count is not None:
        _check_complete(folder, count, files, {question_id for question_id, _ in seen_in})
    return records


def _check_complete(folder: Path, count: int, files: dict[int, Path], done: set[int]) -> None:
    missing_shards = [index for index in range(count) if index not in files]
    if missing_shards:
        listed = ", ".join(f"{index}/{count}" for index in missing_shards)
        raise HarnessError(f"{folder}: shard {listed} missing; run it with bench.shard=<i>/{count}")
    expected = profile_question_ids(folder)
    if expected is None:
        return
    # Shard i/n holds the questions at positions i, i+n, ... of the profile's list.
    missing = [(position, q) for position, q in enumerate(expected) if q not in done]
    if missing:
        position, question_id = missing[0]
        raise HarnessError(
            f"{folder}: {len(missing)} of {len(expected)} questions missing across shards (first: "
            f"question {question_id} of shard {position % count}/{count}); rerun that shard to finish it"
        )

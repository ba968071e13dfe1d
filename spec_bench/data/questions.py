"""Spec-Bench questions: loading with a schema check, categories, selection and shards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from spec_bench.errors import HarnessError

CATEGORIES = ("mt_bench", "translation", "summarization", "qa", "math_reasoning", "rag")
# Spec-Bench reports its first 80 questions as one category although the file keeps
# MT-bench's eight sub-categories (writing, roleplay, ...) in the `category` field.
MT_BENCH_IDS = range(81, 161)


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str  # as reported: one of CATEGORIES
    subcategory: str  # the file's raw `category` field
    turns: tuple[str, ...]


def _parse(line: str, where: str) -> Question:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise HarnessError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(item, dict):
        raise HarnessError(f"{where}: expected a JSON object, got {type(item).__name__}")
    for field in ("question_id", "category", "turns"):
        if field not in item:
            raise HarnessError(f"{where}: missing field '{field}'")
    question_id, raw, turns = item["question_id"], item["category"], item["turns"]
    # bool is an int subclass in Python; `true` is not a question id.
    if not isinstance(question_id, int) or isinstance(question_id, bool):
        raise HarnessError(f"{where}: 'question_id' must be an integer")
    if not isinstance(raw, str):
        raise HarnessError(f"{where}: 'category' must be a string")
    if not isinstance(turns, list) or not turns:
        raise HarnessError(f"{where}: 'turns' must be a non-empty list")
    if not all(isinstance(turn, str) and turn.strip() for turn in turns):
        raise HarnessError(f"{where}: every turn must be a non-empty string")
    if question_id in MT_BENCH_IDS:
        category = "mt_bench"
    elif raw in CATEGORIES:
        category = raw
    else:
        raise HarnessError(f"{where}: unknown category '{raw}' for question {question_id}")
    return Question(question_id, category, raw, tuple(turns))


def load_questions(path: str | Path) -> list[Question]:
    """Every question of a Spec-Bench JSONL file, in file order; any defect is a HarnessError."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"question file not found: {path} (run `make setup` to fetch Spec-Bench)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise HarnessError(f"cannot read question file {path}: {error}") from None
    questions: list[Question] = []
    seen: set[int] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        question = _parse(line, f"{path}:{number}")
        if question.question_id in seen:
            raise HarnessError(f"{path}:{number}: duplicate question_id {question.question_id}")
        seen.add(question.question_id)
        questions.append(question)
    if not questions:
        raise HarnessError(f"{path}: no questions in file")
    return questions


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` as ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(part) for part in str(shard).split("/"))
    except ValueError:
        raise HarnessError(f"shard must look like i/n (e.g. 0/4), got '{shard}'") from None
    if count < 1 or not 0 <= index < count:
        raise HarnessError(f"shard '{shard}' needs 0 <= i < n")
    return index, count


def select_questions(
    questions: list[Question], per_category: int | None, shard: str | None = None
) -> list[Question]:
    """The first ``per_category`` questions of each category (file order), then every n-th
    of those, starting at i, for shard ``i/n``."""
    valid_count = isinstance(per_category, int) and not isinstance(per_category, bool) and per_category > 0
    if per_category is not None and not valid_count:
        raise HarnessError(f"per_category must be a positive integer or null, got {per_category!r}")
    selection = list(questions)
    if per_category is not None:
        taken = dict.fromkeys(CATEGORIES, 0)
        selection = []
        for question in questions:
            if taken[question.category] < per_category:
                taken[question.category] += 1
                selection.append(question)
    if shard:
        index, count = parse_shard(shard)
        selection = selection[index::count]
    return selection

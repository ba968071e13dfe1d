"""Spec-Bench questions: loading with a schema check, categories, selection and shards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from spec_bench.errors import HarnessError

CATEGORIES = ("mt_bench", "translation", "summarization", "qa", "math_reasoning", "rag")
MT_BENCH_IDS = range(81, 161)  # Spec-Bench's first 80 questions: MT-bench, 8 sub-categories
MT_BENCH_SUBCATEGORIES = (
    "writing",
    "roleplay",
    "reasoning",
    "math",
    "coding",
    "extraction",
    "stem",
    "humanities",
)


@dataclass(frozen=True)
class Question:
    question_id: int
    category: str  # as reported: one of CATEGORIES
    subcategory: str  # the file's raw `category` field
    turns: tuple[str, ...]


def _reported_category(question_id: int, raw: str) -> str | None:
    if question_id in MT_BENCH_IDS or raw in MT_BENCH_SUBCATEGORIES:
        return "mt_bench"
    return raw if raw in CATEGORIES else None


def _parse(line: str, where: str) -> Question:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise HarnessError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(item, dict):
        raise HarnessError(f"{where}: expected a JSON object")
    question_id, raw, turns = item.get("question_id"), item.get("category"), item.get("turns")
    if not isinstance(question_id, int) or isinstance(question_id, bool):
        raise HarnessError(f"{where}: 'question_id' must be an integer")
    if not isinstance(raw, str):
        raise HarnessError(f"{where}: 'category' must be a string")
    if not isinstance(turns, list) or not turns:
        raise HarnessError(f"{where}: 'turns' must be a non-empty list")
    if not all(isinstance(turn, str) and turn.strip() for turn in turns):
        raise HarnessError(f"{where}: every turn must be a non-empty string")
    category = _reported_category(question_id, raw)
    if category is None:
        raise HarnessError(f"{where}: unknown category '{raw}'")
    return Question(question_id, category, raw, tuple(turns))


def load_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"question file not found: {path} (run `make setup` to fetch Spec-Bench)")
    questions: list[Question] = []
    seen: set[int] = set()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
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
    try:
        index, count = (int(part) for part in str(shard).split("/"))
    except ValueError:
        raise HarnessError(f"bench.shard must look like i/n (e.g. 0/4), got '{shard}'") from None
    if count < 1 or not 0 <= index < count:
        raise HarnessError(f"bench.shard {shard}: need 0 <= i < n")
    return index, count


def select_questions(
    questions: list[Question], per_category: int | None, shard: str | None = None
) -> list[Question]:
    """The first ``per_category`` questions of each category (file order), then every n-th
    of those for shard ``i/n``."""
    selection = list(questions)
    if per_category is not None:
        taken: dict[str, int] = {}
        selection = []
        for question in questions:
            if taken.get(question.category, 0) < per_category:
                taken[question.category] = taken.get(question.category, 0) + 1
                selection.append(question)
    if shard:
        index, count = parse_shard(shard)
        selection = selection[index::count]
    return selection

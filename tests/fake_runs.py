"""Hand-written run folders, shaped like the runner's, for report tests that need no model."""

from __future__ import annotations

import json
from pathlib import Path

# question id -> category; 81 is MT-bench's first question, the rest Spec-Bench's others.
QUESTIONS = {81: "writing", 82: "writing", 161: "translation", 162: "translation"}
CPU = {
    "cpu": "Test CPU 3000",
    "gpu": None,
    "device": "cpu",
    "torch_threads": 2,
    "packages": {"torch": "2.13.0"},
}


def write_questions(path: Path, questions: dict[int, str] = QUESTIONS) -> Path:
    lines = [
        json.dumps({"question_id": q, "category": c, "turns": [f"question {q}"]})
        for q, c in questions.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def record(
    question_id: int, tokens_per_s: float, accept_lengths: list[int], sources: dict | None = None
) -> dict:
    """One answered question: ``tokens_per_s`` and ``accept_lengths`` set speedup and MAT."""
    new_tokens = sum(accept_lengths)
    wall = new_tokens / tokens_per_s
    shares = {"prefill": 0.05, "draft": 0.1, "forward": 0.65, "accept": 0.1, "bookkeeping": 0.05}
    phases = {phase: share * wall for phase, share in shares.items()}
    category = "mt_bench" if 81 <= question_id <= 160 else QUESTIONS[question_id]
    turn = {
        "text": "answer",
        "token_ids": list(range(new_tokens)),
        "new_tokens": new_tokens,
        "wall_time_s": wall,
        "steps": len(accept_lengths),
        "accept_lengths": accept_lengths,
        "accepted_by_source": sources or {"bonus": len(accept_lengths)},
        "phase_times": phases,
    }
    return {
        "question_id": question_id,
        "category": category,
        "subcategory": QUESTIONS[question_id],
        "new_tokens": new_tokens,
        "wall_time_s": wall,
        "steps": len(accept_lengths),
        "accept_lengths": accept_lengths,
        "ar_match": True,
        "turns": [turn],
    }


def write_run(
    root: Path,
    drafter: str,
    records: list[dict],
    *,
    temperature: float = 0.0,
    questions: Path | None = None,
    shards: dict[str, list[dict]] | None = None,
    environment: dict = CPU,
    model: str = "tiny",
    budget: str = "paper",
    knobs: dict | None = None,
) -> Path:
    """A run folder under ``root/<drafter>[@<budget>]/t<T>``; ``shards`` maps "i/n" to that
    shard's records (then ``records`` is ignored)."""
    name = drafter if budget == "paper" or drafter == "ar" else f"{drafter}@{budget}"
    folder = root / name / f"t{temperature:g}"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model": {"name": model},
        "drafter": {"name": drafter},
        "bench": {"name": "smoke", "per_category": None, "max_new_tokens": 8, "shard": None},
        "temperature": temperature,
        "engine": {"budget": budget},
        "run_name": drafter,
        **({"knobs": knobs} if knobs else {}),
        "questions": str(questions or root / "absent-questions.jsonl"),
        "wandb": {"mode": "disabled", "project": "hd-spec-bench-tests", "entity": None},
    }
    (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    files = {"answers.jsonl": records} if shards is None else {_shard_file(s): r for s, r in shards.items()}
    for name, rows in files.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        environment_file = name.replace("answers", "environment").replace(".jsonl", ".json")
        (folder / environment_file).write_text(json.dumps(environment))
    return folder


def _shard_file(shard: str) -> str:
    index, count = shard.split("/")
    return f"answers.shard-{index}-of-{count}.jsonl"


def paper_like_root(root: Path, hd_sources: bool = True) -> Path:
    """ar, pld and hd at T=0 and T=1 over two categories; hd labels its drafts W/S/L."""
    speeds = {"ar": 10.0, "pld": 15.0, "hd": 18.0}
    lengths = {"ar": [1, 1, 1, 1], "pld": [3, 1, 2, 2], "hd": [4, 2, 3, 3]}
    for temperature in (0.0, 1.0):
        for drafter, speed in speeds.items():
            sources = None
            if drafter == "hd" and hd_sources:
                sources = {"W": 3, "S": 2, "L": 3, "bonus": 4}
            slower = 1.0 if temperature == 0 else 0.8
            records = [
                record(q, speed * slower * (1 + 0.1 * i), lengths[drafter], sources)
                for i, q in enumerate(QUESTIONS)
            ]
            write_run(root, drafter, records, temperature=temperature)
    return root

"""A run killed with SIGKILL mid-decoding and rerun ends as if never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from spec_bench import records
from spec_bench.records import RecordWriter, read_records
from spec_bench.runner import Runner

from .conftest import CACHE_DIR, REPO, compose_config

QUESTIONS = [
    (161, "translation", "Translate into German: The weather is nice today."),
    (321, "qa", "What is the capital of France?"),
    (401, "math_reasoning", "Tom has 3 apples and buys 4 more. How many apples does he have?"),
]
# Three one-turn questions, 16 tokens each: small enough to decode three times.
TINY = (
    "drafter=ar",
    "bench.max_new_tokens=16",
    "engine.warmup_tokens=0",
    "wandb.mode=disabled",
    "model.dtype=float32",
)


def test_kill_9_then_rerun_equals_an_uninterrupted_run(target, data_dir, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(json.dumps({"question_id": q, "category": c, "turns": [t]}) + "\n" for q, c, t in QUESTIONS)
    )
    settings = (*TINY, f"questions={questions}", f"data_dir={data_dir}", f"cache_dir={CACHE_DIR}")
    # The uninterrupted reference, decoded in this process with the session's model.
    reference = read_records(
        Runner(compose_config(*settings, f"out_dir={tmp_path / 'reference'}"), target=target).run().answers
    )

    out = tmp_path / "runs"
    command = [sys.executable, str(REPO / "run.py"), *settings, f"out_dir={out}"]
    answers = out / "smoke" / "smollm2_135m" / "ar" / "t0" / "answers.jsonl"
    victim = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (answers.exists() and b"\n" in answers.read_bytes()):
            assert victim.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no answer written within 240 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait()
    assert victim.returncode == -signal.SIGKILL
    survived = read_records(answers)
    assert 1 <= len(survived) < len(reference), "the kill should land mid-run"

    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    finished = read_records(answers)
    assert finished[: len(survived)] == survived  # finished answers are kept, not redone
    assert [r["question_id"] for r in finished] == [r["question_id"] for r in reference]
    assert [[t["token_ids"] for t in r["turns"]] for r in finished] == [
        [t["token_ids"] for t in r["turns"]] for r in reference
    ]
    assert answers.read_bytes().endswith(b"\n")


def test_each_record_is_on_disk_before_the_next_question(tmp_path, monkeypatch):
    path = tmp_path / "answers.jsonl"
    lines_at_fsync = []
    # fsync once per record, and only once the record is flushed into the file.
    monkeypatch.setattr(records.os, "fsync", lambda fd: lines_at_fsync.append(path.read_bytes().count(b"\n")))
    with RecordWriter(path) as writer:
        for question_id in (81, 82, 161):
            writer.write({"question_id": question_id})
    assert lines_at_fsync == [1, 2, 3]

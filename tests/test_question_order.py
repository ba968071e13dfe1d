"""A question's decoding never depends on the questions decoded before it: shuffled, the
same questions give the same tokens, budgets and accepted lengths, at the automatic budget
(whose policy restarts from its priors every request) with HD (whose window, pool and L
padding restart from the run's seed every request)."""

from __future__ import annotations

import json
import random

from spec_bench.data import load_questions, select_questions
from spec_bench.records import read_records
from spec_bench.runner import Runner

from .conftest import CACHE_DIR, compose_config

SETTINGS = (
    "drafter=hd",
    "engine.budget=auto",
    "bench=smoke",
    "bench.max_new_tokens=24",
    "bench.timing=separate",  # no AR beside each question: what is compared here is the method's
    "engine.check_ar_match=false",
    "engine.warmup_tokens=4",
    "model_db.limit=16",
    "model_db.max_new_tokens=32",
    "wandb.mode=disabled",
)


def test_shuffling_the_questions_changes_no_questions_decoding(target, data_dir, tmp_path):
    chosen = select_questions(load_questions(data_dir / "spec_bench" / "question.jsonl"), 1)
    shuffled = list(chosen)
    random.Random(3).shuffle(shuffled)
    assert [q.question_id for q in shuffled] != [q.question_id for q in chosen]
    results = []
    for name, order in (("natural", chosen), ("shuffled", shuffled)):
        questions = tmp_path / f"{name}.jsonl"
        questions.write_text(
            "".join(
                json.dumps({"question_id": q.question_id, "category": q.subcategory, "turns": list(q.turns)})
                + "\n"
                for q in order
            )
        )
        cfg = compose_config(
            *SETTINGS,
            f"questions={questions}",
            f"out_dir={tmp_path / name}",
            f"data_dir={data_dir}",
            f"cache_dir={CACHE_DIR}",
        )
        records = read_records(Runner(cfg, target=target).run().answers)
        assert [r["question_id"] for r in records] == [q.question_id for q in order]
        results.append(
            {
                r["question_id"]: [(t["token_ids"], t["budgets"], t["accept_lengths"]) for t in r["turns"]]
                for r in records
            }
        )
    natural, reordered = results
    assert natural == reordered
    budgets = [b for turns in natural.values() for _, chosen_budgets, _ in turns for b in chosen_budgets]
    lengths = [n for turns in natural.values() for _, _, accepted in turns for n in accepted]
    assert max(budgets) > 0 and max(lengths) > 1  # it drafted, at budgets the policy chose


def test_token_recycling_keeps_its_matrix_across_questions_and_repeats_in_the_same_order(
    target, data_dir, tmp_path
):
    """TR's matrix lives for the whole run, as in TR: two runs of the same questions in the same
    order draft the same, step for step (and the tokens are AR's either way)."""
    runs = []
    for name in ("first", "second"):
        cfg = compose_config(
            "drafter=token_recycling",
            "engine.budget=16",
            "bench=smoke",
            "bench.max_new_tokens=16",
            "bench.timing=separate",
            "engine.check_ar_match=false",
            "engine.warmup_tokens=4",
            "wandb.mode=disabled",
            f"out_dir={tmp_path / name}",
            f"data_dir={data_dir}",
            f"cache_dir={CACHE_DIR}",
        )
        records = read_records(Runner(cfg, target=target).run().answers)
        runs.append([(r["question_id"], [t["accept_lengths"] for t in r["turns"]]) for r in records])
    assert runs[0] == runs[1]
    assert max(n for _, turns in runs[0] for lengths in turns for n in lengths) > 1

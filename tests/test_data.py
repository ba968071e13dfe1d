"""Spec-Bench questions, selection, shards, chat templates and fetching."""

from __future__ import annotations

import json

import pytest

from spec_bench.data import CATEGORIES, build_prompt, load_questions, select_questions
from spec_bench.data.fetch import fetch
from spec_bench.errors import HarnessError


@pytest.fixture(scope="module")
def questions(data_dir):
    return load_questions(data_dir / "spec_bench" / "question.jsonl")


def test_six_categories_of_eighty(questions):
    assert len(questions) == 480
    counts = {c: sum(q.category == c for q in questions) for c in CATEGORIES}
    assert counts == dict.fromkeys(CATEGORIES, 80)
    mt_bench = [q for q in questions if q.category == "mt_bench"]
    assert {q.question_id for q in mt_bench} == set(range(81, 161))
    assert all(len(q.turns) == 2 for q in mt_bench)
    assert len({q.subcategory for q in mt_bench}) == 8


def test_selection_and_shards(questions):
    smoke = select_questions(questions, 1)
    assert [q.category for q in smoke] == list(CATEGORIES)
    quick = select_questions(questions, 2)
    halves = [select_questions(questions, 2, f"{i}/2") for i in range(2)]
    ids = [q.question_id for half in halves for q in half]
    assert sorted(ids) == sorted(q.question_id for q in quick) and len(set(ids)) == len(ids)
    with pytest.raises(HarnessError, match="shard"):
        select_questions(questions, 1, "2/2")


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"question_id": 81, "category": "writing", "turns": ["a"]}', "{oops"], ":2: not valid JSON"),
        (['{"category": "qa", "turns": ["a"]}'], ":1: 'question_id'"),
        (['{"question_id": 321, "category": "qa", "turns": ["a", " "]}'], ":1: every turn"),
        (['{"question_id": 321, "category": "qa", "turns": []}'], ":1: 'turns'"),
        (['{"question_id": 321, "category": "poetry", "turns": ["a"]}'], ":1: unknown category"),
        (['{"question_id": 321, "category": "qa", "turns": ["a"]}'] * 2, ":2: duplicate"),
        ([], "no questions"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, lines, message):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(HarnessError, match=message) as error:
        load_questions(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(HarnessError, match="question file not found"):
        load_questions(tmp_path / "none.jsonl")


def test_templates():
    assert build_prompt("vicuna_v1.1", ["Hi", "More"], ["Hello"]).endswith(
        "questions. USER: Hi ASSISTANT: Hello</s>USER: More ASSISTANT:"
    )
    llama = build_prompt("llama2", ["Hi", "More"], ["Hello"])
    assert llama.startswith("[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.")
    assert llama.endswith("<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] More [/INST]")
    with pytest.raises(HarnessError, match="unknown chat template"):
        build_prompt("alpaca", ["Hi"], [])


def test_chatml_matches_the_tokenizer_template(target):
    one = [{"role": "user", "content": "Hi there"}]
    two = one + [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "More"}]
    apply = target.tokenizer.apply_chat_template
    assert build_prompt("chatml", ["Hi there"], []) == apply(one, tokenize=False, add_generation_prompt=True)
    assert build_prompt("chatml", ["Hi there", "More"], ["Hello!"]) == apply(
        two, tokenize=False, add_generation_prompt=True
    )


def test_fetch_from_mirror_is_idempotent(tmp_path, data_dir):
    dest = tmp_path / "data"
    written = fetch(dest, mirror=data_dir)
    assert (dest / "spec_bench" / "question.jsonl").read_bytes() == (
        data_dir / "spec_bench" / "question.jsonl"
    ).read_bytes()
    assert (dest / "corpora" / "lima.json").exists() and len(written) == 2
    mtime = (dest / "spec_bench" / "question.jsonl").stat().st_mtime_ns
    fetch(dest, mirror=data_dir)
    assert (dest / "spec_bench" / "question.jsonl").stat().st_mtime_ns == mtime


def test_fetch_from_a_bad_mirror_fails_cleanly(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(HarnessError, match="has no"):
        fetch(tmp_path / "data", mirror=tmp_path / "mirror")
    assert not (tmp_path / "data").exists()
    corrupt = tmp_path / "corrupt"
    (corrupt / "spec_bench").mkdir(parents=True)
    (corrupt / "spec_bench" / "question.jsonl").write_text(json.dumps({"question_id": 1}) + "\n")
    with pytest.raises(HarnessError, match="category"):
        fetch(tmp_path / "data2", mirror=corrupt)
    assert not (tmp_path / "data2").exists()

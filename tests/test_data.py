"""Spec-Bench questions, selection, shards, chat templates and fetching."""

from __future__ import annotations

import dataclasses
import io
import json
import urllib.error
from pathlib import Path

import pytest

import spec_bench.data.fetch as fetch_module
from spec_bench.data import (
    CATEGORIES,
    TEMPLATES,
    Question,
    build_prompt,
    load_questions,
    select_questions,
)
from spec_bench.errors import HarnessError

QUESTIONS = Path("spec_bench") / "question.jsonl"
LIMA = Path("corpora") / "lima.json"


@pytest.fixture(scope="module")
def questions(data_dir):
    return load_questions(data_dir / QUESTIONS)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def record(question_id: int = 321, category: str = "qa", turns: object = ("a question",)) -> str:
    return json.dumps({"question_id": question_id, "category": category, "turns": list(turns)})


# --- the real file -------------------------------------------------------------------------------


def test_real_file_has_six_categories_of_eighty(questions):
    assert len(questions) == 480
    assert [sum(q.category == c for q in questions) for c in CATEGORIES] == [80] * 6
    mt_bench = [q for q in questions if q.category == "mt_bench"]
    assert {q.question_id for q in mt_bench} == set(range(81, 161))
    assert all(len(q.turns) == 2 for q in mt_bench)
    assert all(len(q.turns) == 1 for q in questions if q.category != "mt_bench")
    subcategories = [q.subcategory for q in mt_bench]
    assert {s: subcategories.count(s) for s in set(subcategories)} == dict.fromkeys(
        ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"], 10
    )
    assert all(q.subcategory == q.category for q in questions if q.category != "mt_bench")
    assert isinstance(questions[0].turns, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        questions[0].category = "qa"


# --- selection and shards ------------------------------------------------------------------------


def test_one_per_category_takes_the_first_of_each(questions):
    smoke = select_questions(questions, 1)
    assert [q.category for q in smoke] == list(CATEGORIES)
    assert [q.question_id for q in smoke] == [81, 161, 241, 321, 401, 481]


def test_per_category_keeps_file_order(questions):
    quick = select_questions(questions, 2)
    assert [q.question_id for q in quick] == [81, 82, 161, 162, 241, 242, 321, 322, 401, 402, 481, 482]
    assert select_questions(questions, None) == questions
    assert len(select_questions(questions, 1000)) == 480


def test_shards_partition_the_selection(questions):
    quick = select_questions(questions, 2)
    halves = [select_questions(questions, 2, f"{i}/2") for i in range(2)]
    assert halves[0] == quick[0::2] and halves[1] == quick[1::2]
    first_ids = {q.question_id for q in halves[0]}
    second_ids = {q.question_id for q in halves[1]}
    assert not first_ids & second_ids
    assert first_ids | second_ids == {q.question_id for q in quick}
    thirds = [select_questions(questions, None, f"{i}/3") for i in range(3)]
    assert sorted(q.question_id for third in thirds for q in third) == sorted(
        q.question_id for q in questions
    )


@pytest.mark.parametrize("shard", ["2/2", "0/0", "-1/2", "a/b", "1", "0/2/3", "1/-2"])
def test_malformed_shard(questions, shard):
    with pytest.raises(HarnessError, match="shard"):
        select_questions(questions, 1, shard)


@pytest.mark.parametrize("per_category", [0, -1, True, "2"])
def test_bad_per_category(questions, per_category):
    with pytest.raises(HarnessError, match="per_category"):
        select_questions(questions, per_category)


# --- malformed question files --------------------------------------------------------------------


@pytest.mark.parametrize(
    "lines, message",
    [
        ([record(81, "writing"), "{oops"], ":2: not valid JSON"),
        (["[1, 2]"], ":1: expected a JSON object"),
        ([json.dumps({"category": "qa", "turns": ["a"]})], ":1: missing field 'question_id'"),
        ([json.dumps({"question_id": 321, "category": "qa"})], ":1: missing field 'turns'"),
        ([json.dumps({"question_id": "321", "category": "qa", "turns": ["a"]})], ":1: 'question_id' must"),
        ([json.dumps({"question_id": True, "category": "qa", "turns": ["a"]})], ":1: 'question_id' must"),
        ([record(category=7)], ":1: 'category' must be a string"),
        ([record(turns=[])], ":1: 'turns' must be a non-empty list"),
        ([json.dumps({"question_id": 321, "category": "qa", "turns": "a"})], ":1: 'turns' must"),
        ([record(turns=["a", ""])], ":1: every turn"),
        ([record(turns=["a", "  "])], ":1: every turn"),
        ([record(turns=["a", 3])], ":1: every turn"),
        ([record(category="poetry")], ":1: unknown category 'poetry'"),
        ([record(5, "writing")], ":1: unknown category 'writing'"),  # MT-bench names only for 81-160
        ([record(321), record(322), record(321)], ":3: duplicate question_id 321"),
        ([], "no questions"),
        (["", "   "], "no questions"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, lines, message):
    path = write_lines(tmp_path / "q.jsonl", lines)
    with pytest.raises(HarnessError, match=message) as error:
        load_questions(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_blank_lines_are_skipped_but_counted(tmp_path):
    path = write_lines(tmp_path / "q.jsonl", [record(321), "", record(322), "", "not json"])
    with pytest.raises(HarnessError, match=r"q\.jsonl:5: not valid JSON"):
        load_questions(path)
    path = write_lines(tmp_path / "ok.jsonl", ["", record(321), "  ", record(401, "math_reasoning")])
    assert [q.question_id for q in load_questions(path)] == [321, 401]


def test_mt_bench_ids_are_mt_bench_whatever_their_raw_category(tmp_path):
    path = write_lines(tmp_path / "q.jsonl", [record(81, "math", ["x", "y"]), record(160, "translation")])
    loaded = load_questions(path)
    assert loaded == [
        Question(81, "mt_bench", "math", ("x", "y")),
        Question(160, "mt_bench", "translation", ("a question",)),
    ]


def test_not_utf8_and_missing_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"question_id": 321, "category": "qa", "turns": ["caf\xe9"]}\n')
    with pytest.raises(HarnessError, match="cannot read question file .*latin1.jsonl"):
        load_questions(path)
    with pytest.raises(HarnessError, match=r"question file not found: .*none\.jsonl \(run `make setup`"):
        load_questions(tmp_path / "none.jsonl")


# --- chat templates ------------------------------------------------------------------------------

VICUNA = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers to the user's questions."
)
LLAMA2 = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while "
    "being safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, dangerous, "
    "or illegal content. Please ensure that your responses are socially unbiased and positive in nature."
    "\n\nIf a question does not make any sense, or is not factually coherent, explain why instead of "
    "answering something not correct. If you don't know the answer to a question, please don't share "
    "false information."
)
SMOLLM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
)


@pytest.mark.parametrize(
    "template, one_turn, two_turns",
    [
        (
            "vicuna_v1.1",
            VICUNA + " USER: Hi ASSISTANT:",
            VICUNA + " USER: Hi ASSISTANT: Hello</s>USER: More ASSISTANT:",
        ),
        (
            "llama2",
            f"[INST] <<SYS>>\n{LLAMA2}\n<</SYS>>\n\nHi [/INST]",
            f"[INST] <<SYS>>\n{LLAMA2}\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] More [/INST]",
        ),
        (
            "chatml",
            SMOLLM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            SMOLLM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
            "<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n",
        ),
    ],
)
def test_templates_exact(template, one_turn, two_turns):
    assert build_prompt(template, ["Hi"], []) == one_turn
    assert build_prompt(template, ["Hi", "More"], ["Hello"]) == two_turns


def test_template_names_and_errors():
    assert TEMPLATES == ("vicuna_v1.1", "llama2", "chatml")
    with pytest.raises(HarnessError, match="unknown chat template 'alpaca'"):
        build_prompt("alpaca", ["Hi"], [])
    with pytest.raises(HarnessError, match="2 turns need 1 earlier answers, got 0"):
        build_prompt("chatml", ["Hi", "More"], [])
    with pytest.raises(HarnessError, match="at least one user turn"):
        build_prompt("chatml", [], [])


def test_chatml_matches_the_tokenizer_template(target):
    one = [{"role": "user", "content": "Hi there"}]
    two = one + [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "More"}]
    apply = target.tokenizer.apply_chat_template
    assert build_prompt("chatml", ["Hi there"], []) == apply(one, tokenize=False, add_generation_prompt=True)
    assert build_prompt("chatml", ["Hi there", "More"], ["Hello!"]) == apply(
        two, tokenize=False, add_generation_prompt=True
    )


# --- fetching ------------------------------------------------------------------------------------


@pytest.fixture
def no_default_mirror(tmp_path, monkeypatch):
    """No $SPEC_BENCH_MIRROR and a repository with no ../shared/data beside it."""
    monkeypatch.delenv("SPEC_BENCH_MIRROR", raising=False)
    monkeypatch.setattr(fetch_module, "REPO", tmp_path / "nowhere" / "repo")


def test_fetch_from_mirror_copies_both_and_is_idempotent(tmp_path, data_dir):
    dest = tmp_path / "data"
    written = fetch_module.fetch(dest, mirror=data_dir)
    assert written == [dest / QUESTIONS, dest / LIMA]
    for relative in (QUESTIONS, LIMA):
        assert (dest / relative).read_bytes() == (data_dir / relative).read_bytes()
    mtimes = [(dest / relative).stat().st_mtime_ns for relative in (QUESTIONS, LIMA)]
    assert fetch_module.fetch(dest, mirror=data_dir) == written
    assert [(dest / relative).stat().st_mtime_ns for relative in (QUESTIONS, LIMA)] == mtimes
    assert sorted(p.name for p in (dest / "spec_bench").iterdir()) == ["question.jsonl"]  # no tmp left


def test_fetch_replaces_a_truncated_copy(tmp_path, data_dir):
    dest = tmp_path / "data"
    (dest / "spec_bench").mkdir(parents=True)
    (dest / QUESTIONS).write_text(record(321) + "\n")
    fetch_module.fetch(dest, mirror=data_dir)
    assert len(load_questions(dest / QUESTIONS)) == 480


def test_fetch_from_a_bad_mirror_fails_cleanly(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(HarnessError, match="mirror .* has no spec_bench/question.jsonl"):
        fetch_module.fetch(tmp_path / "data", mirror=tmp_path / "mirror")
    assert not (tmp_path / "data").exists()
    corrupt = tmp_path / "corrupt"
    (corrupt / "spec_bench").mkdir(parents=True)
    write_lines(corrupt / QUESTIONS, ['{"question_id": 1}'])
    with pytest.raises(HarnessError, match="missing field 'category'"):
        fetch_module.fetch(tmp_path / "data2", mirror=corrupt)
    assert not (tmp_path / "data2").exists()


def test_fetch_from_a_mirror_without_lima(tmp_path, data_dir, capsys):
    mirror = tmp_path / "mirror"
    (mirror / "spec_bench").mkdir(parents=True)
    (mirror / QUESTIONS).write_bytes((data_dir / QUESTIONS).read_bytes())
    assert fetch_module.fetch(tmp_path / "data", mirror=mirror) == [tmp_path / "data" / QUESTIONS]
    assert "has no corpora/lima.json" in capsys.readouterr().err


def test_default_mirror_order(tmp_path, monkeypatch, no_default_mirror):
    assert fetch_module.default_mirror() is None
    shared = tmp_path / "nowhere" / "shared" / "data"
    shared.mkdir(parents=True)
    assert fetch_module.default_mirror() == shared
    monkeypatch.setenv("SPEC_BENCH_MIRROR", str(tmp_path / "elsewhere"))
    assert fetch_module.default_mirror() == tmp_path / "elsewhere"


def test_fetch_downloads_without_a_mirror(tmp_path, data_dir, monkeypatch, capsys, no_default_mirror):
    requested = []

    def fake_urlopen(url, timeout):
        requested.append((url, timeout))
        return io.BytesIO((data_dir / QUESTIONS).read_bytes())

    monkeypatch.setattr(fetch_module.urllib.request, "urlopen", fake_urlopen)
    dest = tmp_path / "data"
    assert fetch_module.fetch(dest) == [dest / QUESTIONS]
    assert requested == [(fetch_module.QUESTIONS_URL, fetch_module.DOWNLOAD_TIMEOUT_S)]
    assert (dest / QUESTIONS).read_bytes() == (data_dir / QUESTIONS).read_bytes()
    assert "LIMA corpus is only available from a mirror" in capsys.readouterr().err
    fetch_module.fetch(dest)
    assert len(requested) == 1  # already present: not downloaded again


@pytest.mark.parametrize(
    "response, message",
    [
        (urllib.error.URLError("no route to host"), "cannot download .*no route to host"),
        (io.BytesIO(b"<html>404</html>\n"), "is not a valid question file: .*not valid JSON"),
    ],
)
def test_failed_download_leaves_nothing(tmp_path, monkeypatch, no_default_mirror, response, message):
    def fake_urlopen(url, timeout):
        if isinstance(response, Exception):
            raise response
        return response

    monkeypatch.setattr(fetch_module.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(HarnessError, match=message):
        fetch_module.fetch(tmp_path / "data")
    assert list((tmp_path / "data").rglob("*")) == [tmp_path / "data" / "spec_bench"]


def test_cli_exit_codes_and_one_line_errors(tmp_path, data_dir, capsys):
    assert fetch_module.main(["--dest", str(tmp_path / "data"), "--mirror", str(data_dir)]) == 0
    assert capsys.readouterr().out.count("ok ") == 2
    assert fetch_module.main(["--dest", str(tmp_path / "data"), "--mirror", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mirror ") and err.count("\n") == 1
    (tmp_path / "file").write_text("")
    assert fetch_module.main(["--dest", str(tmp_path / "file"), "--mirror", str(data_dir)]) == 2
    assert capsys.readouterr().err.startswith("error: cannot write under ")
    with pytest.raises(SystemExit) as exit_info:
        fetch_module.main(["--help"])
    assert exit_info.value.code == 0 and "--mirror DIR" in capsys.readouterr().out

"""The retrieval datastore: suffix arrays, the index reader, the cached builder (no model)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from spec_bench.datastore import (
    DatastoreSettings,
    PackageIndex,
    SuffixIndex,
    open_datastore,
    write_index,
    write_package_index,
)
from spec_bench.datastore.corpus import resolve_corpus, turns_of
from spec_bench.datastore.index import suffix_array
from spec_bench.errors import HarnessError


def brute_force_suffix_array(tokens: list[int]) -> list[int]:
    return sorted(range(len(tokens)), key=lambda start: tokens[start:])


@pytest.mark.parametrize("seed", range(40))
def test_suffix_array_matches_brute_force(seed):
    rng = random.Random(seed)
    tokens = [rng.randrange(rng.choice([2, 3, 50])) for _ in range(rng.randrange(1, 120))]
    assert suffix_array(np.array(tokens)).tolist() == brute_force_suffix_array(tokens)


def make_index(tmp_path, entries, chunk_tokens=1 << 20) -> SuffixIndex:
    path = tmp_path / "index.bin"
    write_index(entries, path, vocab_size=100, chunk_tokens=chunk_tokens)
    return SuffixIndex(path)


def test_counts_and_continuations_on_hand_made_text(tmp_path):
    # Entries are concatenated as in REST: 1 2 3 4 | 1 2 3 5 | 1 2 6
    index = make_index(tmp_path, [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 6]])
    assert index.n_tokens == 11
    assert index.count([1, 2]) == 3
    assert index.count([1, 2, 3]) == 2
    assert index.count([2, 6]) == 1
    assert index.count([7]) == 0
    rows = index.continuations([1, 2, 3], length=2, max_matches=10)
    assert sorted(map(tuple, rows.tolist())) == [(4, 1), (5, 1)]
    # The text's end pads with -1.
    assert index.continuations([2, 6], length=3, max_matches=10).tolist() == [[-1, -1, -1]]
    assert index.continuations([9], length=3, max_matches=10).shape == (0, 3)


def test_chunks_are_searched_together(tmp_path):
    entries = [[1, 2, 3], [1, 2, 4], [1, 2, 5], [7, 1, 2]]
    index = make_index(tmp_path, entries, chunk_tokens=6)  # two entries per chunk
    assert len(index.chunks) == 2
    assert index.count([1, 2]) == 4
    rows = index.continuations([1, 2], length=1, max_matches=10).ravel().tolist()
    assert sorted(rows) == [-1, 3, 4, 5]  # the last chunk ends in "1 2": nothing follows


def test_corrupt_and_missing_index_fail_in_one_line(tmp_path):
    with pytest.raises(HarnessError, match="not found"):
        SuffixIndex(tmp_path / "nope.bin")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x10\x00\x00\x00\x01\x02")
    with pytest.raises(HarnessError, match="not a suffix-array index"):
        SuffixIndex(bad)


@pytest.mark.parametrize("write", [write_index, write_package_index])
def test_bad_corpora_leave_no_file(tmp_path, write):
    with pytest.raises(HarnessError, match="outside the vocabulary"):
        write([[1, 2, 3], [3, 500]], tmp_path / "index.bin", vocab_size=100)
    with pytest.raises(HarnessError, match="the corpus is empty"):
        write([[], []], tmp_path / "index.bin", vocab_size=100)
    assert list(tmp_path.iterdir()) == []


def test_corpus_layouts_are_read():
    share_gpt = {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}
    openai = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    lima = {"instruction": "a", "input": "", "output": "b", "history": []}
    for row in (share_gpt, openai, lima, {"data": ["a", "b"]}):
        assert turns_of(row) == ("a", "b")


class CharTokenizer:
    """A real-enough tokenizer for the builder: one id per character."""

    name_or_path = "chars"

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def get_vocab(self):
        return {chr(c): c + self.offset for c in range(128)}

    def __len__(self) -> int:
        return 128 + self.offset

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[ord(c) + self.offset for c in text if ord(c) < 128] for text in texts]}


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "chats.json"
    path.write_text(
        json.dumps(
            [
                {"data": ["what is one plus one", "two"]},
                {"data": ["secret benchmark question", "leak"]},
                {"data": ["say hello", "hello there"]},
            ]
        )
    )
    return path


def test_cache_is_reused_and_rebuilt_only_when_inputs_change(tmp_path, corpus_file):
    cache = tmp_path / "cache"
    settings = DatastoreSettings(corpus=str(corpus_file))
    first = open_datastore(settings, CharTokenizer(), cache, tmp_path, ["Secret  benchmark question"])
    folders = list((cache / "datastore").iterdir())
    assert len(folders) == 1
    meta = json.loads((folders[0] / "meta.json").read_text())
    assert meta["conversations"] == 2  # the benchmark question's conversation is excluded
    assert first.count([ord(c) for c in "leak"]) == 0
    assert first.count([ord(c) for c in "hello"]) == 2
    built_at = (folders[0] / "index.bin").stat().st_mtime_ns

    again = open_datastore(settings, CharTokenizer(), cache, tmp_path, ["Secret  benchmark question"])
    assert again.path == first.path
    assert (folders[0] / "index.bin").stat().st_mtime_ns == built_at

    open_datastore(DatastoreSettings(corpus=str(corpus_file), limit=1), CharTokenizer(), cache, tmp_path)
    open_datastore(settings, CharTokenizer(offset=1), cache, tmp_path)
    assert len(list((cache / "datastore").iterdir())) == 3


def test_missing_index_without_build_says_how_to_build(tmp_path, corpus_file):
    settings = DatastoreSettings(corpus=str(corpus_file), build_if_missing=False)
    with pytest.raises(HarnessError, match="python -m spec_bench.datastore"):
        open_datastore(settings, CharTokenizer(), tmp_path / "cache", tmp_path)


def test_unknown_corpus_fails_in_one_line(tmp_path):
    with pytest.raises(HarnessError) as error:
        resolve_corpus(str(tmp_path / "missing.json"), tmp_path)
    assert "\n" not in str(error.value)


def test_lima_datastore_builds_from_the_shared_corpus(data_dir, tmp_path):
    from omegaconf import OmegaConf

    from spec_bench.models import load_tokenizer

    from .conftest import CACHE_DIR, REPO

    tokenizer = load_tokenizer(OmegaConf.load(REPO / "conf" / "model" / "smollm2_135m.yaml"), CACHE_DIR)
    index = open_datastore(DatastoreSettings(corpus="lima", limit=50), tokenizer, tmp_path, data_dir)
    meta = json.loads((index.path.parent / "meta.json").read_text())
    assert meta["conversations"] == 50 and meta["tokens"] == index.n_tokens > 10_000
    common = tokenizer(" the", add_special_tokens=False)["input_ids"]
    assert index.count(common) > 100


# The PyPI draftretriever package's index (drafter.datastore.backend=draftretriever).


def test_package_index_drafts_continuations_of_the_last_token_pair(tmp_path):
    path = tmp_path / "draftretriever.bin"
    assert write_package_index([[1, 2, 3, 4, 5], [1, 2, 3, 9], [6]], path, vocab_size=20) == 10
    index = PackageIndex(path)
    # Both continuations of (1, 2) in the corpus; the prefix [3, 4] of [3, 4, 5] is dropped.
    assert index.drafts([0, 1, 2], limit=8, length=3) == [[3, 4, 5], [3, 9]]
    assert index.drafts([1, 2], limit=8, length=2) == [[3, 4], [3, 9]]
    assert index.drafts([1, 2], limit=1, length=3) == [[3, 4, 5]]
    assert index.drafts([5, 6], limit=8, length=3) == []  # a pair the corpus never had


def test_package_index_guards_short_queries_and_forgets_between_requests(tmp_path):
    path = tmp_path / "draftretriever.bin"
    write_package_index([[1, 2, 3, 4]], path, vocab_size=20)
    index = PackageIndex(path)
    # One token would make the package's search panic and abort the process.
    assert index.drafts([2], limit=8, length=3) == []
    # A query teaches the table its own trigrams ...
    index.drafts([7, 8, 9], limit=8, length=3)
    assert index.drafts([7, 8], limit=8, length=3) == [[9]]
    # ... which the next request must not see.
    index.start_request()
    assert index.drafts([7, 8], limit=8, length=3) == []


def test_package_backend_is_cached_apart_and_unknown_backends_fail(tmp_path, corpus_file):
    cache = tmp_path / "cache"
    suffix = open_datastore(DatastoreSettings(corpus=str(corpus_file)), CharTokenizer(), cache, tmp_path)
    package = open_datastore(
        DatastoreSettings(corpus=str(corpus_file), backend="draftretriever"), CharTokenizer(), cache, tmp_path
    )
    assert isinstance(package, PackageIndex) and package.path.name == "draftretriever.bin"
    assert package.path.parent != suffix.path.parent
    meta = json.loads((package.path.parent / "meta.json").read_text())
    assert meta["backend"] == "draftretriever" and meta["conversations"] == 3
    hello = [ord(c) for c in "hel"]
    assert [ord(c) for c in "lo"] in [draft[:2] for draft in package.drafts(hello, limit=8, length=2)]
    with pytest.raises(HarnessError, match="unknown datastore backend 'sa'"):
        DatastoreSettings.from_config({"backend": "sa"})

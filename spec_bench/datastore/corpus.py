"""Chat corpora the databases are built from, as an iterator of conversations (lists of turns).

``corpus`` is one of
- ``lima``: ``<data_dir>/corpora/lima.json`` (1,029 conversations; `make setup` copies it
  from the local mirror), the offline default;
- ``ultrachat``: UltraChat through ``datasets`` (REST's datastore corpus; needs the hub);
- ``oasst1``: OpenAssistant OASST1 English prompter messages through ``datasets`` (the HD
  paper's prompt corpus for the model database; needs the hub);
- a path to a JSON or JSONL file of conversations in any of the layouts ``turns_of`` reads.

Every corpus has an identity (a digest of the local file, or the hub id and split) that
keys the cached databases built from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spec_bench.errors import HarnessError

HUB_CORPORA = {
    # name: (dataset id, config, split)
    "ultrachat": ("stingning/ultrachat", None, "train"),
    "oasst1": ("OpenAssistant/oasst1", None, "train"),
}
LIMA = Path("corpora") / "lima.json"


@dataclass(frozen=True)
class Conversation:
    """Turns alternate user / assistant, starting with the user."""

    turns: tuple[str, ...]

    @property
    def prompts(self) -> tuple[str, ...]:
        return self.turns[0::2]


@dataclass(frozen=True)
class Corpus:
    name: str
    identity: str  # changes whenever the content may have changed
    path: Path | None  # the local file, if any
    setting: str = "corpus"  # the config key that chose it, for error messages

    def conversations(
        self, limit: int | None = None, exclude: frozenset[str] = frozenset()
    ) -> Iterator[Conversation]:
        """Up to ``limit`` conversations, skipping any with a turn in ``exclude`` (e.g. the
        benchmark's own questions, which must never leak into a database)."""
        source = _local_conversations(self.path) if self.path else _hub_conversations(self.name, self.setting)
        count = 0
        for conversation in source:
            if limit is not None and count >= limit:
                return
            if exclude and any(_normalise(turn) in exclude for turn in conversation.turns):
                continue
            count += 1
            yield conversation


def excluded_texts(texts) -> frozenset[str]:
    """The set ``Corpus.conversations(exclude=...)`` compares turns against."""
    return frozenset(_normalise(text) for text in texts)


def _normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def resolve_corpus(corpus: str, data_dir: str | Path, setting: str = "corpus") -> Corpus:
    """Name or path -> a ``Corpus``; a missing local file fails in one line naming ``setting``."""
    if corpus in HUB_CORPORA:
        dataset, config, split = HUB_CORPORA[corpus]
        return Corpus(corpus, f"hub:{dataset}:{config}:{split}", None, setting)
    path = Path(data_dir) / LIMA if corpus == "lima" else Path(corpus)
    if not path.is_file():
        hint = " (run `make setup`, which copies it from ../shared/data)" if corpus == "lima" else ""
        raise HarnessError(f"corpus file not found: {path} ({setting}){hint}")
    return Corpus(corpus if corpus == "lima" else path.stem, f"file:{_digest(path)}", path, setting)


def turns_of(row: dict) -> tuple[str, ...]:
    """The turns of one conversation in the layouts chat corpora use: LIMA/Alpaca
    (``instruction``, ``input``, ``output``, ``history``), UltraChat (``data``), ShareGPT
    (``conversations`` of ``value``) and OpenAI-style ``messages`` of ``content``."""
    if "instruction" in row:
        turns: list[str] = []
        for pair in row.get("history") or []:
            turns.extend(str(text) for text in pair)
        prompt = row["instruction"] + (f"\n{row['input']}" if row.get("input") else "")
        turns.append(prompt)
        if row.get("output"):
            turns.append(row["output"])
        return tuple(turns)
    if "data" in row:
        return tuple(str(text) for text in row["data"])
    for key, text_key in (("conversations", "value"), ("messages", "content")):
        if key in row:
            return tuple(str(turn.get(text_key, "")) for turn in row[key])
    raise ValueError(f"unknown conversation layout with keys {sorted(row)}")


def _local_conversations(path: Path) -> Iterator[Conversation]:
    try:
        if path.suffix == ".jsonl":
            rows = (json.loads(line) for line in path.open(encoding="utf-8") if line.strip())
        else:
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise ValueError("expected a JSON list of conversations")
        for number, row in enumerate(rows, 1):
            try:
                turns = turns_of(row)
            except (TypeError, ValueError, KeyError, AttributeError) as error:
                raise HarnessError(f"{path}: conversation {number}: {error}") from None
            if any(turns):
                yield Conversation(turns)
    except (json.JSONDecodeError, ValueError) as error:
        raise HarnessError(f"{path}: not a conversation file ({error})") from None


def _hub_conversations(name: str, setting: str) -> Iterator[Conversation]:
    dataset_id, config, split = HUB_CORPORA[name]
    try:
        from datasets import load_dataset

        rows = load_dataset(dataset_id, config, split=split, streaming=True)
    except Exception as error:  # datasets raises many kinds (connection, not found, offline mode)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HarnessError(
            f"cannot load corpus '{name}' ({dataset_id}) from the Hugging Face hub: {message}; "
            f"point {setting} at a local copy (a JSON or JSONL chat file), or set {setting}=lima"
        ) from None
    if name == "oasst1":
        # Only English prompts that start a conversation: the model DB's answers are the
        # model's own, so the dataset's replies are not used.
        rows = (r for r in rows if r["role"] == "prompter" and r["parent_id"] is None and r["lang"] == "en")
        yield from (Conversation((row["text"],)) for row in rows)
    else:
        yield from (Conversation(turns_of(row)) for row in rows)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]

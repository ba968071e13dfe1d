"""The cached retrieval datastore shared by REST and HD's statistics database (L).

An index is built once per (backend, tokenizer, corpus, limit) and kept under
``<cache_dir>/datastore/<corpus>-<key>/``: the index file (``index.bin``, REST's
DraftRetriever suffix-array layout, or ``draftretriever.bin``, the PyPI package's own
table) and ``meta.json`` (what it was built from). A changed backend, tokenizer, corpus
file or limit gives a new key, hence a rebuild; an unchanged one is reused by every run and every drafter.
Concurrent jobs (a parallel sweep) take a file lock, so one builds and the others wait.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from spec_bench.datastore.corpus import Corpus, excluded_texts, resolve_corpus
from spec_bench.datastore.index import SuffixIndex, write_index
from spec_bench.datastore.package import PackageIndex, write_package_index
from spec_bench.errors import HarnessError

FORMAT = 3  # bump when what is indexed or its layout changes
ENCODE_BATCH = 256

# backend -> (index file name, writer, reader). ``suffix_array`` is REST's retriever and the
# default; ``draftretriever`` is the PyPI package's trigram table (see package.py).
BACKENDS = {
    "suffix_array": ("index.bin", write_index, SuffixIndex),
    "draftretriever": ("draftretriever.bin", write_package_index, PackageIndex),
}

_open_indexes: dict[Path, SuffixIndex | PackageIndex] = {}  # one reader per file per process


@dataclass(frozen=True)
class DatastoreSettings:
    """``drafter.datastore`` of the run config."""

    corpus: str = "lima"
    backend: str = "suffix_array"
    limit: int | None = None  # conversations; None = all
    build_if_missing: bool = True
    path: str | None = None  # an index file to use as is, instead of the cached one

    @classmethod
    def from_config(cls, node) -> DatastoreSettings:
        node = node or {}
        limit = node.get("limit")
        path = node.get("path")
        backend = str(node.get("backend", "suffix_array"))
        if backend not in BACKENDS:
            raise HarnessError(
                f"unknown datastore backend '{backend}' (choose one of: {', '.join(BACKENDS)})"
            )
        return cls(
            corpus=str(node.get("corpus", "lima")),
            backend=backend,
            limit=None if limit is None else int(limit),
            build_if_missing=bool(node.get("build_if_missing", True)),
            path=None if path is None else str(path),
        )


def tokenizer_digest(tokenizer) -> str:
    """Changes whenever the tokenizer would encode some text differently."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def vocab_size_of(tokenizer) -> int:
    # libsais wants an alphabet bound strictly above every symbol.
    return len(tokenizer) + 1


def index_folder(
    cache_dir: str | Path,
    corpus: Corpus,
    tokenizer,
    limit: int | None,
    excluded: str,
    backend: str = "suffix_array",
) -> Path:
    key = json.dumps([FORMAT, backend, corpus.identity, tokenizer_digest(tokenizer), limit, excluded])
    return Path(cache_dir) / "datastore" / f"{corpus.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def open_datastore(
    settings: DatastoreSettings,
    tokenizer,
    cache_dir: str | Path,
    data_dir: str | Path,
    excluded: list[str] = (),
) -> SuffixIndex | PackageIndex:
    """The index for ``settings``: an explicit file, else the cached one, built if missing."""
    if settings.path:
        return _open(Path(settings.path), settings.backend)
    corpus = resolve_corpus(settings.corpus, data_dir, setting="datastore.corpus")
    exclude = excluded_texts(excluded)
    excluded_digest = digest_texts(exclude)
    folder = index_folder(cache_dir, corpus, tokenizer, settings.limit, excluded_digest, settings.backend)
    index_file = folder / BACKENDS[settings.backend][0]
    if not index_file.is_file():
        if not settings.build_if_missing:
            raise HarnessError(
                f"no datastore index for corpus '{settings.corpus}' at {folder}; build it with "
                f"`python -m spec_bench.datastore --corpus {settings.corpus} --backend {settings.backend}` "
                f"(or set datastore.build_if_missing=true)"
            )
        build_datastore(corpus, tokenizer, folder, settings.limit, exclude, settings.backend)
    return _open(index_file, settings.backend)


def build_datastore(
    corpus: Corpus,
    tokenizer,
    folder: Path,
    limit: int | None,
    exclude: frozenset[str] = frozenset(),
    backend: str = "suffix_array",
) -> dict:
    """Tokenize every turn of ``corpus`` (one index entry per turn, as REST does) into
    ``folder``; returns the metadata written beside the index."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent job building the same index: wait for it
        meta_file = folder / "meta.json"
        file_name, write, _ = BACKENDS[backend]
        if (folder / file_name).is_file() and meta_file.is_file():
            return json.loads(meta_file.read_text())
        started = time.perf_counter()
        counts = {"conversations": 0, "turns": 0}
        n_tokens = write(
            _encoded_turns(corpus.conversations(limit, exclude), tokenizer, counts, corpus.name),
            folder / file_name,
            vocab_size_of(tokenizer),
        )
        meta = {
            "format": FORMAT,
            "backend": backend,
            "corpus": corpus.name,
            "corpus_identity": corpus.identity,
            "tokenizer": getattr(tokenizer, "name_or_path", ""),
            "tokenizer_digest": tokenizer_digest(tokenizer),
            "vocab_size": vocab_size_of(tokenizer),
            "limit": limit,
            "excluded_texts": len(exclude),
            **counts,
            "tokens": n_tokens,
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _encoded_turns(conversations, tokenizer, counts: dict, name: str):
    batch: list[str] = []
    with tqdm(desc=f"datastore {name}", unit=" conv", mininterval=1.0) as progress:
        for conversation in conversations:
            counts["conversations"] += 1
            progress.update(1)
            batch.extend(turn for turn in conversation.turns if turn.strip())
            if len(batch) >= ENCODE_BATCH:
                yield from _encode(batch, tokenizer, counts)
                batch = []
        yield from _encode(batch, tokenizer, counts)


def _encode(texts: list[str], tokenizer, counts: dict):
    if not texts:
        return
    counts["turns"] += len(texts)
    # As REST's builder (tokenizer.encode(turn)): with the tokenizer's special tokens, so a
    # Llama tokenizer starts every turn with BOS, the only separator between entries.
    yield from tokenizer(texts)["input_ids"]


def _open(index_file: Path, backend: str = "suffix_array") -> SuffixIndex | PackageIndex:
    key = index_file.resolve()
    if key not in _open_indexes:
        _open_indexes[key] = BACKENDS[backend][2](index_file)
    return _open_indexes[key]


def digest_texts(texts: frozenset[str]) -> str:
    """Keys a database by the texts excluded from it."""
    return hashlib.sha256("\n".join(sorted(texts)).encode()).hexdigest()[:16] if texts else ""


def open_run_datastore(resources) -> SuffixIndex | PackageIndex:
    """The run's datastore (its ``datastore`` settings, ``spec_bench.drafting.Resources``),
    with the benchmark's questions excluded from the corpus."""
    settings = DatastoreSettings.from_config(resources.datastore)
    return open_datastore(
        settings,
        resources.target.tokenizer,
        resources.cache_dir,
        resources.data_dir,
        resources.excluded_texts,
    )

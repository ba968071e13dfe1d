"""S, the model-dependent database: n-grams the target model itself tends to write.

Built once per target model: the model answers a prompt corpus greedily (OASST1 English
prompts and 1,024-token answers in the paper, ``bench=paper``; LIMA and short answers in the
CPU profiles), every LEVEL-gram of its answers is counted once per answer (document
frequency), the ``top_total`` most frequent are kept, and for each first token its
``per_key`` most frequent continuations. Spec-Bench's own questions are excluded from the
prompts. The official builder stopped after 11 corpus rows (``if i == 10: break``): here that
is ``model_db.limit=11``, not the default. (It also took every English message as a prompt,
replies included, and dropped each answer's last n-gram; we take conversation-opening
prompts and every n-gram.)

As a draft source (``ModelDBSource``), S drafts a key's continuations as the official code
does, least frequent first (it stores the top GUESS ascending and the drafter takes the first
entries, so with W's drafts ahead of them the most frequent are the ones cut);
``frequent_first`` (a fix of ``hd_fixed``) drafts the most frequent first.

The database is a JSON file under ``<cache_dir>/model_db/``, keyed by everything that
changes it (model weights, tokenizer, chat template, corpus, limits, LEVEL, format).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import MISSING, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from spec_bench.data.templates import build_prompt
from spec_bench.datastore.corpus import excluded_texts, resolve_corpus
from spec_bench.datastore.store import digest_texts, tokenizer_digest
from spec_bench.drafting.source import Resources, Source
from spec_bench.engine.verify import greedy_tokens
from spec_bench.errors import HarnessError
from spec_bench.files import write_text_atomic

FORMAT = 1  # bump when what is stored or how it is built changes


class ModelDB:
    """First token -> continuations (LEVEL-1 tokens), most frequent first."""

    def __init__(self, entries: dict[int, list[list[int]]]) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return sum(len(continuations) for continuations in self.entries.values())

    def lookup(self, token: int, limit: int) -> list[list[int]]:
        return self.entries.get(token, [])[: max(limit, 0)]

    @classmethod
    def load(cls, path: Path) -> ModelDB:
        try:
            payload = json.loads(Path(path).read_text())
            if payload.get("format") != FORMAT:
                raise ValueError(f"format {payload.get('format')}, expected {FORMAT}")
            entries = {int(token): continuations for token, continuations in payload["entries"].items()}
        except (OSError, ValueError, KeyError, AttributeError) as error:
            raise HarnessError(f"cannot read the model database {path} ({error})") from None
        return cls(entries)


def rank_ngrams(documents: Iterable[list[int]], level: int, top_total: int, per_key: int) -> ModelDB:
    """Count each LEVEL-gram once per document; keep the ``top_total`` most frequent, then at
    most ``per_key`` per first token. Ties go to the smaller token ids (deterministic)."""
    frequency: Counter[tuple[int, ...]] = Counter()
    for tokens in documents:
        frequency.update({tuple(tokens[i : i + level]) for i in range(len(tokens) - level + 1)})
    ranked = sorted(frequency.items(), key=lambda item: (-item[1], item[0]))[:top_total]
    entries: dict[int, list[list[int]]] = {}
    for ngram, _ in ranked:
        continuations = entries.setdefault(ngram[0], [])
        if len(continuations) < per_key:
            continuations.append(list(ngram[1:]))
    return ModelDB(entries)


@dataclass(frozen=True)
class ModelDBSettings:
    """``model_db`` of the run config (``conf/model_db/``; the YAML holds the defaults)."""

    corpus: str
    limit: int | None  # prompts; None = all
    max_new_tokens: int
    max_prompt_tokens: int  # longer prompts are skipped
    batch_size: int
    top_total: int
    per_key: int
    build_if_missing: bool = True
    path: str | None = None  # a built file to use as is

    @classmethod
    def from_config(cls, node) -> ModelDBSettings:
        values = dict(node or {})
        fields = cls.__dataclass_fields__
        unknown = set(values) - set(fields)
        if unknown:
            raise HarnessError(f"unknown model_db settings: {', '.join(sorted(unknown))}")
        missing = [name for name, spec in fields.items() if spec.default is MISSING and name not in values]
        if missing:
            raise HarnessError(f"missing model_db settings: {', '.join(missing)}")
        return cls(**values)


def model_db_file(settings: ModelDBSettings, target, corpus_identity: str, level: int, excluded: str) -> Path:
    key = json.dumps(
        [
            FORMAT,
            target.name,
            target.source,
            str(target.dtype),
            tokenizer_digest(target.tokenizer),
            target.template,
            corpus_identity,
            settings.limit,
            settings.max_new_tokens,
            settings.max_prompt_tokens,
            settings.top_total,
            settings.per_key,
            level,
            excluded,
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    corpus = settings.corpus if "/" not in settings.corpus else Path(settings.corpus).stem
    return Path("model_db") / f"{target.name}-{corpus}-{digest}.json"


def open_model_db(
    settings: ModelDBSettings,
    target,
    level: int,
    cache_dir: str | Path,
    data_dir: str | Path,
    excluded: list[str] = (),
) -> ModelDB:
    """The model database for ``target``: an explicit file, else the cached one, built if
    missing (or a one-line error saying how to build it)."""
    if settings.path:
        return ModelDB.load(Path(settings.path))
    corpus = resolve_corpus(settings.corpus, data_dir, setting="model_db.corpus")
    exclude = excluded_texts(excluded)
    path = Path(cache_dir) / model_db_file(settings, target, corpus.identity, level, digest_texts(exclude))
    if not path.is_file():
        if not settings.build_if_missing:
            raise HarnessError(
                f"no model database for '{target.name}' at {path}; build it with "
                f"`python -m hd.build_model_db --model {target.name}` (or set "
                f"model_db.build_if_missing=true)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel job building the same file: wait
            if not path.is_file():
                prompts = [c.prompts[0] for c in corpus.conversations(settings.limit, exclude) if c.prompts]
                _build(settings, target, level, prompts, path, corpus.identity)
    return ModelDB.load(path)


def _build(
    settings: ModelDBSettings, target, level: int, prompts: list[str], path: Path, identity: str
) -> None:
    started = time.perf_counter()
    answers = generate_answers(target, prompts, settings)
    db = rank_ngrams(answers, level, settings.top_total, settings.per_key)
    payload = {
        "format": FORMAT,
        "model": target.name,
        "model_source": target.source,
        "corpus": settings.corpus,
        "corpus_identity": identity,
        "prompts": len(answers),
        "answer_tokens": sum(len(a) for a in answers),
        "level": level,
        "entries_kept": len(db),
        "keys": len(db.entries),
        "build_seconds": round(time.perf_counter() - started, 1),
        "settings": {k: v for k, v in settings.__dict__.items() if k not in ("path", "build_if_missing")},
        "entries": {str(token): continuations for token, continuations in db.entries.items()},
    }
    write_text_atomic(path, json.dumps(payload))  # never a half-written database


def generate_answers(target, prompts: list[str], settings: ModelDBSettings) -> list[list[int]]:
    """The target's greedy answers (token ids) to those ``prompts`` that fit in
    ``max_prompt_tokens``, in the prompts' order. Decoded in batches of similar length
    (left-padded) so building takes minutes on a CPU rather than hours."""
    encoded = [target.encode(build_prompt(target.template, [prompt], [])) for prompt in prompts]
    encoded = [ids for ids in encoded if len(ids) <= settings.max_prompt_tokens]
    by_length = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers: list[list[int]] = [[] for _ in encoded]
    with tqdm(total=len(encoded), desc=f"model DB {target.name}", unit=" prompt") as progress:
        for start in range(0, len(by_length), settings.batch_size):
            rows = by_length[start : start + settings.batch_size]
            batch = _greedy_batch(target, [encoded[i] for i in rows], settings.max_new_tokens)
            for row, answer in zip(rows, batch):
                answers[row] = answer
            progress.update(len(rows))
    return answers


@torch.inference_mode()
def _greedy_batch(target, batch: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """Greedy answers to left-padded prompts. A plain cached loop: ``generate``'s per-step
    machinery (logits processors, stopping criteria) costs more than the forward here."""
    device, width = target.device, max(len(ids) for ids in batch)
    pad = min(target.eos_token_ids)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    eos = torch.tensor(sorted(target.eos_token_ids), device=device)
    cache = DynamicCache()
    done = torch.zeros(len(batch), dtype=torch.bool, device=device)
    steps = []
    for _ in range(max_new_tokens):
        logits = target.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        next_tokens = greedy_tokens(logits[:, -1])
        steps.append(next_tokens)
        done |= torch.isin(next_tokens, eos)
        if bool(done.all()):
            break
        input_ids = next_tokens[:, None]
        mask = torch.cat([mask, torch.ones_like(input_ids)], dim=-1)
        positions = positions[:, -1:] + 1
    rows = torch.stack(steps, dim=-1).tolist()
    return [_until_eos(row, target.eos_token_ids) for row in rows]


def _until_eos(tokens: list[int], eos_ids: set[int]) -> list[int]:
    for position, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[:position]
    return tokens


def open_run_model_db(resources: Resources, level: int) -> ModelDB:
    """The run's model database (its ``model_db`` settings), Spec-Bench questions excluded."""
    settings = ModelDBSettings.from_config(resources.model_db)
    return open_model_db(
        settings, resources.target, level, resources.cache_dir, resources.data_dir, resources.excluded_texts
    )


class ModelDBSource(Source):
    """S as a draft source: the last token's continuations in the model database."""

    def __init__(self, *, level: int, frequent_first: bool, db: ModelDB | None = None) -> None:
        self.level = level
        self.frequent_first = frequent_first
        self.db = db

    def attach(self, resources: Resources) -> None:
        self.db = open_run_model_db(resources, self.level)

    def lookup(self, context: list[int], room: int) -> list[list[int]]:
        continuations = self.db.lookup(context[-1], len(self.db.entries.get(context[-1], ())))
        return continuations if self.frequent_first else continuations[::-1]

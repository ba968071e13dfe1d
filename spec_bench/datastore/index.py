"""REST's suffix-array datastore, in its DraftRetriever's on-disk layout.

Layout (``FasterDecoding/REST``, ``DraftRetriever``): a sequence of chunks, each
``u32 n_bytes, i32 tokens[n], u32 n_bytes, i32 suffix_array[n]``, little-endian. The
tokens of all entries are concatenated without separators (as in REST, a continuation can
run into the next entry) and each chunk has its own suffix array, so a corpus of any size
is built chunk by chunk in bounded memory.

Why not the PyPI package ``draftretriever`` (0.1.1): despite the name it is not REST's
retriever. Its Writer stores a table of next-token frequencies per token *pair* (bincode),
so no suffix longer than two tokens can be matched, and its Reader's ``search`` runs a
randomised tree search that adds to the table on every query and can panic inside a Rust
thread, which aborts the Python process (losing the run). So this module writes REST's
layout itself (suffix arrays by prefix doubling in numpy) and reads it with numpy: exact
longest-suffix matches, deterministic, and a crash-free reader.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spec_bench.datastore.search import draftretriever_search, most_frequent_nodes
from spec_bench.errors import HarnessError
from spec_bench.files import replaced_atomically

CHUNK_TOKENS = 1 << 24  # 64 MiB of tokens per chunk; suffix sorting needs ~10x that in RAM


def suffix_array(tokens: np.ndarray) -> np.ndarray:
    """Start positions of the suffixes of ``tokens`` in lexicographic order (a suffix that is
    a prefix of another sorts first), by prefix doubling: O(n log^2 n), all in numpy."""
    n = len(tokens)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    rank = np.unique(tokens, return_inverse=True)[1].astype(np.int64)
    order = np.argsort(rank, kind="stable")
    width = 1
    while True:
        following = np.full(n, -1, dtype=np.int64)  # -1: past the end sorts first
        following[: n - width] = rank[width:]
        order = np.lexsort((following, rank))
        first, second = rank[order], following[order]
        new_group = np.empty(n, dtype=bool)
        new_group[0] = True
        new_group[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.cumsum(new_group) - 1
        if rank[order[-1]] == n - 1 or width >= n:  # every suffix has its own rank
            return order
        width *= 2


def write_index(
    entries: Iterable[list[int]], path: str | os.PathLike, vocab_size: int, chunk_tokens: int = CHUNK_TOKENS
) -> int:
    """Write ``entries`` (token lists) as an index at ``path``; returns the token count.
    Nothing lands at ``path`` unless the whole index was written."""
    path = Path(path)
    total = 0
    with replaced_atomically(path) as tmp, open(tmp, "wb") as handle:
        pending: list[int] = []
        for tokens in checked_entries(entries, vocab_size, path):
            if pending and len(pending) + len(tokens) > chunk_tokens:
                _write_chunk(handle, pending)
                pending = []
            pending.extend(tokens)
            total += len(tokens)
        _write_chunk(handle, pending)
        handle.flush()
        os.fsync(handle.fileno())
    return total


def checked_entries(entries: Iterable[list[int]], vocab_size: int, path: Path) -> Iterator[list[int]]:
    """The non-empty entries, each checked against the vocabulary; an empty corpus fails."""
    empty = True
    for tokens in entries:
        if not tokens:
            continue
        if max(tokens) >= vocab_size or min(tokens) < 0:
            raise HarnessError(f"token id outside the vocabulary (size {vocab_size}) for {path}")
        empty = False
        yield tokens
    if empty:
        raise HarnessError(f"no tokens to index for {path}: the corpus is empty")


def _write_chunk(handle, tokens: list[int]) -> None:
    array = np.asarray(tokens, dtype="<i4")
    suffixes = suffix_array(array).astype("<i4")
    for block in (array, suffixes):
        handle.write(np.uint32(block.nbytes).astype("<u4").tobytes())
        handle.write(block.tobytes())


@dataclass
class _Chunk:
    tokens: np.ndarray  # int32 view into the file
    suffixes: np.ndarray  # int32 start positions in ``tokens``, sorted by suffix


class SuffixIndex:
    """Read-only view of an index file (REST DraftRetriever layout)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise HarnessError(f"datastore index not found: {self.path}")
        raw = np.memmap(self.path, dtype=np.uint8, mode="r")
        self.chunks: list[_Chunk] = []
        offset = 0
        try:
            while offset < len(raw):
                tokens, offset = _read_block(raw, offset)
                suffixes, offset = _read_block(raw, offset)
                if len(tokens) != len(suffixes):
                    raise ValueError("token and suffix blocks differ in length")
                self.chunks.append(_Chunk(tokens, suffixes))
        except ValueError as error:
            raise HarnessError(f"{self.path} is not a suffix-array index ({error})") from None
        self.n_tokens = sum(len(chunk.tokens) for chunk in self.chunks)

    def start_request(self) -> None:
        pass  # static: nothing a request could change

    def count(self, query: list[int]) -> int:
        """Occurrences of ``query`` in the indexed text."""
        return sum(hi - lo for _, lo, hi in self._ranges(query))

    def longest_suffix(self, context: list[int], longest: int, shortest: int) -> int:
        """Length of the longest suffix of ``context`` in ``[shortest, longest]`` that occurs,
        or 0. Occurrence is monotone in the length (a longer suffix occurring implies every
        shorter one does), so this binary search finds what REST's scan from long to short
        finds, in a handful of lookups instead of up to 15."""
        longest = min(longest, len(context))
        if longest < shortest or self.count(context[-shortest:]) == 0:
            return 0
        lo, hi = shortest, longest  # lo occurs; find the largest length that does
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count(context[-mid:]):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def continuations(
        self, query: list[int], length: int, max_matches: int, spread: bool = False
    ) -> np.ndarray:
        """The ``length`` tokens after up to ``max_matches`` occurrences of ``query`` per chunk.

        Rows are padded with -1 where a chunk ends. REST's reader takes the first
        ``max_matches`` occurrences of each chunk in suffix-array order, i.e. the
        continuations that sort first by token id; with ``spread`` they are taken evenly
        across the range instead (and across chunks, ``max_matches`` in all), so the counts
        of a frequent query are not skewed towards small token ids.
        """
        ranges = self._ranges(query)
        total = sum(hi - lo for _, lo, hi in ranges)
        if total == 0 or length <= 0 or max_matches <= 0:
            return np.empty((0, max(length, 0)), dtype=np.int64)
        rows = []
        for chunk, lo, hi in ranges:
            if spread:
                take = max(1, round(max_matches * (hi - lo) / total)) if total > max_matches else hi - lo
                picks = np.unique(np.linspace(lo, hi - 1, num=min(take, hi - lo)).round().astype(np.int64))
            else:
                picks = np.arange(lo, min(hi, lo + max_matches))
            starts = chunk.suffixes[picks].astype(np.int64) + len(query)
            positions = starts[:, None] + np.arange(length)[None, :]
            inside = positions < len(chunk.tokens)
            block = np.full(positions.shape, -1, dtype=np.int64)
            block[inside] = chunk.tokens[positions[inside]]
            rows.append(block)
        found = np.concatenate(rows)
        return found[:max_matches] if spread else found

    def search(
        self,
        query: list[int],
        choices: int,
        length: int,
        max_matches: int,
        spread: bool = False,
        cut: bool = True,
    ) -> list[tuple[list[int], int]]:
        """REST's DraftRetriever search: the draft-tree nodes of ``query``'s continuations with
        their counts, most frequent and parents first; without ``cut``, simply the
        ``choices`` most frequent nodes (see ``spec_bench.datastore.search``)."""
        rows = self.continuations(query, length, max_matches, spread)
        return draftretriever_search(rows, choices) if cut else most_frequent_nodes(rows, choices)

    def _ranges(self, query: list[int]) -> list[tuple[_Chunk, int, int]]:
        if not query:
            raise ValueError("empty query")
        found = []
        for chunk in self.chunks:
            lo = _bound(chunk, query, inclusive=False)
            hi = _bound(chunk, query, inclusive=True)
            if hi > lo:
                found.append((chunk, lo, hi))
        return found


def _read_block(raw: np.ndarray, offset: int) -> tuple[np.ndarray, int]:
    if offset + 4 > len(raw):
        raise ValueError("truncated header")
    n_bytes = int(raw[offset : offset + 4].view("<u4")[0])
    start, end = offset + 4, offset + 4 + n_bytes
    if n_bytes % 4 or end > len(raw):
        raise ValueError("truncated block")
    return raw[start:end].view("<i4"), end


def _bound(chunk: _Chunk, query: list[int], inclusive: bool) -> int:
    """First suffix-array slot whose suffix, cut to ``len(query)`` tokens, is >= ``query``
    (``inclusive=False``) or > ``query`` (``inclusive=True``)."""
    tokens, suffixes, width = chunk.tokens, chunk.suffixes, len(query)
    lo, hi = 0, len(suffixes)
    while lo < hi:
        mid = (lo + hi) // 2
        start = int(suffixes[mid])
        head = tokens[start : start + width].tolist()
        if head < query or (inclusive and head == query):
            lo = mid + 1
        else:
            hi = mid
    return lo

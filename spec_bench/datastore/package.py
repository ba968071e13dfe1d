"""The PyPI ``draftretriever`` package's own index: ``drafter.datastore.backend=draftretriever``.

What the package (0.1.1) stores and searches, read from its source: the Writer
(``file_path=``) counts, for every token pair of the corpus, the tokens that follow it (a
trigram table, written with bincode); the Reader (``index_file_path=``) keeps the 12 most
frequent followers per pair, and its ``search`` first adds the query's own trigrams to
that table, then runs a Monte-Carlo tree search from the query's last two tokens and
returns paths of up to four tokens. So it matches two tokens of context at most, unlike
REST's suffix array (``index.py``, the default backend, which matches the longest suffix
that occurs), and it learns from every query.

Guards that make it safe to run a benchmark on (each panic aborts the whole Python process):
- a query shorter than two tokens makes the Rust code index out of bounds, so such
  queries are answered with nothing here;
- a small ``choices`` can leave no path, which panics too: it is always ``CHOICES``;
- the table is reloaded at the start of every request (about 0.2 s for LIMA, billed to
  drafting), so an answer never depends on which questions came before it: a resumed
  run or a shard sees the same drafts as an uninterrupted one.
Paths come back in hash-map order, so they are sorted here to keep runs repeatable.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path

from spec_bench.datastore.index import checked_entries
from spec_bench.errors import HarnessError
from spec_bench.files import replaced_atomically

MIN_QUERY = 2  # the package's search panics below this
# Its ``choices``: it drops paths until their distinct tokens fit, and panics when none is
# left; 64 (REST's and the official HD code's value) always leaves some. ``limit`` is
# applied here instead.
CHOICES = 64


def write_package_index(entries: Iterable[list[int]], path: str | os.PathLike, vocab_size: int) -> int:
    """Write ``entries`` with the package's Writer at ``path``; returns the token count."""
    import draftretriever

    path = Path(path)
    total = 0
    # A fresh file each time: the Writer opens its file without truncating it.
    with replaced_atomically(path) as tmp:
        writer = draftretriever.Writer(file_path=str(tmp), vocab_size=vocab_size)
        try:
            for tokens in checked_entries(entries, vocab_size, path):
                writer.add_entry(list(tokens))
                total += len(tokens)
            writer.finalize()
        finally:
            # Its destructor writes the table (again): let that happen now, before the file
            # is renamed into place or removed, not after.
            del writer
            gc.collect()
    return total


class PackageIndex:
    """A ``draftretriever`` Reader over one index file, fresh for every request."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise HarnessError(f"datastore index not found: {self.path}")
        self._reader = self._load()

    def _load(self):
        import draftretriever

        try:
            return draftretriever.Reader(index_file_path=str(self.path))
        except BaseException as error:  # the package raises pyo3's PanicException on bad files
            raise HarnessError(f"{self.path} is not a draftretriever index ({error})") from None

    def start_request(self) -> None:
        """Forget what earlier queries added to the table."""
        self._reader = self._load()

    def longest_suffix(self, context: list[int], longest: int, shortest: int) -> int:
        """The package answers from the query's last token pair whatever its length: the
        longest allowed query, when it has the two tokens the package needs."""
        longest = min(longest, len(context))
        return longest if longest >= max(shortest, MIN_QUERY) else 0

    def search(
        self,
        query: list[int],
        choices: int,
        length: int,
        max_matches: int = 0,
        spread: bool = False,
        cut: bool = True,
    ) -> list[tuple[list[int], int]]:
        """The package's drafts for ``query`` as draft paths (its search reports no counts:
        0), at most ``choices`` of them. ``max_matches``, ``spread`` and ``cut`` are REST
        reader settings the package has no counterpart for."""
        return [(draft, 0) for draft in self.drafts(query, choices, length)]

    def drafts(self, query: list[int], limit: int, length: int) -> list[list[int]]:
        """Up to ``limit`` distinct drafts of at most ``length`` tokens following ``query``,
        none a prefix of another, longest first (they draft more), then by token ids."""
        if limit <= 0 or length <= 0 or len(query) < MIN_QUERY:
            return []
        paths = self._reader.search([int(token) for token in query], choices=CHOICES)[0]
        found = set()
        for path in paths:
            draft = tuple(token for token in path[:length] if token >= 0)  # -2 pads short paths
            if draft:
                found.add(draft)
        # A prefix of another draft adds no node to a trie: keep the longer one only.
        prefixes = {draft[:end] for draft in found for end in range(1, len(draft))}
        ranked = sorted(found - prefixes, key=lambda draft: (-len(draft), draft))
        return [list(draft) for draft in ranked[:limit]]

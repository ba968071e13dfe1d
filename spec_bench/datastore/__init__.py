"""Retrieval datastore: REST's suffix-array index over a chat corpus (or, as an option, the
PyPI ``draftretriever`` package's own index), shared by REST and HD's statistics database.
Build it ahead with ``python -m spec_bench.datastore``; runs build it on first use otherwise."""

from spec_bench.datastore.index import SuffixIndex, write_index
from spec_bench.datastore.package import PackageIndex, write_package_index
from spec_bench.datastore.store import DatastoreSettings, open_datastore, open_run_datastore

__all__ = [
    "DatastoreSettings",
    "PackageIndex",
    "SuffixIndex",
    "open_datastore",
    "open_run_datastore",
    "write_index",
    "write_package_index",
]

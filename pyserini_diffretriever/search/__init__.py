"""Search DiffRetriever indexes: multi-vector MaxSim, the paper's fusion, index-aware searcher factory, run I/O.

=================================  ===========================================================================
name                               what
=================================  ===========================================================================
:class:`MultiVectorSearcher`       clamped-MaxSim search of a ``multi`` folder (default: candidates + exact)
:func:`open_searcher`              any index folder -> FaissSearcher / LuceneImpactSearcher / MultiVectorSearcher
                                   / LuceneDenseSearcher; :func:`open_searchers`: one or two folders, fused
:data:`INDEX_KINDS`                the table of index kinds (representation, opener, options, fusion side,
                                   thread safety); :func:`register_kind` adds one
:class:`LuceneDenseSearcher`       Anserini HNSW/flat dense index searched with our query encoder
:func:`fuse_min_max`               the paper's min-max fusion of two runs; :class:`MinMaxHybridSearcher`
:class:`SearchResult`              ``docid`` + ``score``; results are ordered by ``(-score, docid)``
:func:`read_topics`                local TSV / JSON / JSONL topics
:func:`write_run` / :func:`read_run`  TREC / MS MARCO run files in Pyserini's formats
=================================  ===========================================================================

Importing this package loads numpy only: FAISS when a token index is used, torch when a query encoder is
built, and the JVM only when a Pyserini searcher (dense or impact index) is opened.
"""

from __future__ import annotations

from .doc_means import build_doc_means
from .factory import check_encoder_compatibility, open_searcher, open_searchers, query_encoder_for
from .fusion import (
    MinMaxHybridSearcher,
    PyseriniHybridSearcher,
    fuse,
    fuse_min_max,
    fuse_min_max_hits,
    normalize_min_max,
)
from .index_format import IndexFormatError, IndexMismatchError, read_manifest
from .kinds import INDEX_KINDS, IndexKind, KindOptionError, register_kind
from .lucene_dense import LuceneDenseSearcher
from .multivector import MultiVectorSearcher
from .multivector_index import MultiVectorIndex
from .results import SearchResult, sort_results
from .runs import RunFormatError, RunWriter, read_run, write_run
from .scoring import maxsim
from .token_index import build_token_index
from .topics import TopicsFormatError, read_topics

__all__ = [
    "INDEX_KINDS",
    "IndexFormatError",
    "IndexKind",
    "IndexMismatchError",
    "KindOptionError",
    "LuceneDenseSearcher",
    "MinMaxHybridSearcher",
    "MultiVectorIndex",
    "MultiVectorSearcher",
    "PyseriniHybridSearcher",
    "RunFormatError",
    "RunWriter",
    "SearchResult",
    "TopicsFormatError",
    "build_doc_means",
    "build_token_index",
    "check_encoder_compatibility",
    "fuse",
    "fuse_min_max",
    "fuse_min_max_hits",
    "maxsim",
    "normalize_min_max",
    "open_searcher",
    "open_searchers",
    "query_encoder_for",
    "read_manifest",
    "read_run",
    "read_topics",
    "register_kind",
    "sort_results",
    "write_run",
]

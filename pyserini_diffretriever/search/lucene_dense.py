"""Search a Lucene dense-vector index (HNSW or flat) with this package's dense query encoder.

Why: Pyserini's ``LuceneHnswDenseSearcher`` / ``LuceneFlatDenseSearcher`` take only the *name* of a Java
encoder. Their Java searchers (Anserini's ``HnswDenseSearcher`` / ``FlatDenseSearcher``) also offer
``search(float[], k)``, so this class encodes the query in Python with a
:class:`~pyserini_diffretriever.encoders.DiffRetrieverQueryEncoder` (or anything with ``encode``) and passes
the vector through pyjnius.

Scores are inner products: Lucene's ``DOT_PRODUCT`` score ``(1 + q.d) / 2`` is mapped back to ``q.d`` (see
:mod:`pyserini_diffretriever.indexing.lucene_dense`), so runs and hybrid fusion see the same scale as the FAISS
index of the same vectors. Hits are :class:`~.results.SearchResult` (``.docid``, ``.score``) ordered by
``(-score, docid)``; the class has ``search`` / ``batch_search`` like Pyserini's searchers, so it plugs into
Pyserini's ``HybridSearcher`` and :class:`~.fusion.MinMaxHybridSearcher` unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .index_format import IndexFormatError, IndexMismatchError, read_manifest
from .results import SearchResult, sort_results

logger = logging.getLogger(__name__)

__all__ = ["LuceneDenseSearcher"]


class LuceneDenseSearcher:
    """Dense search over a ``dense-lucene-index`` folder (Anserini HNSW or flat) with a Python query encoder.

    Parameters
    ----------
    index_dir : str or PathLike
        Lucene index written by ``python -m pyserini_diffretriever.index lucene-dense``.
    query_encoder : object
        ``encode(text) -> [H]`` (and optionally ``encode_batch(texts) -> [B, H]``), e.g. a dense
        ``DiffRetrieverQueryEncoder``. Use :func:`~.factory.open_searcher` to get one that matches the documents.
    ef_search : int, optional
        HNSW search beam (default: the manifest's ``search.efSearch``, else 100; ignored for flat indexes).
    manifest : mapping, optional
        The index manifest, if already read.

    Examples
    --------
    >>> searcher = LuceneDenseSearcher("indexes/c.lucene-hnsw", encoder)  # doctest: +SKIP
    >>> [(hit.docid, round(hit.score, 3)) for hit in searcher.search("shock waves", k=3)]  # doctest: +SKIP
    """

    def __init__(
        self,
        index_dir: str | os.PathLike,
        query_encoder: Any,
        ef_search: int | None = None,
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        from .. import _java

        self.index_dir = Path(index_dir)
        self.manifest = dict(manifest) if manifest is not None else read_manifest(self.index_dir)
        if self.manifest.get("kind") != "dense-lucene-index":
            raise IndexFormatError(f"{index_dir}: kind {self.manifest.get('kind')!r}, expected 'dense-lucene-index'")
        self.query_encoder = query_encoder
        self.dimension = self.manifest.get("dimension")
        lucene = self.manifest.get("lucene", {})
        self.hnsw = bool(lucene.get("hnsw", True))
        self.ef_search = int(ef_search or self.manifest.get("search", {}).get("efSearch") or 100)
        if ef_search is not None and int(ef_search) < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        _java.prepare_jvm()
        from pyserini.pyclass import autoclass

        if self.hnsw:
            args = autoclass("io.anserini.search.HnswDenseSearcher$Args")()
            args.efSearch = self.ef_search
        else:
            args = autoclass("io.anserini.search.FlatDenseSearcher$Args")()
        args.index = str(self.index_dir)
        java_class = "io.anserini.search.HnswDenseSearcher" if self.hnsw else "io.anserini.search.FlatDenseSearcher"
        try:
            self.searcher = autoclass(java_class)(args)
        except Exception as error:  # a JavaException naming the folder
            raise IndexFormatError(f"{index_dir}: Anserini cannot open the index ({error})") from error

    def _vector(self, vector: Any) -> list[float]:
        array = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self.dimension is not None and array.shape[0] != int(self.dimension):
            raise IndexMismatchError(
                f"{self.index_dir}: query vector has dimension {array.shape[0]}, the index {self.dimension}",
                {"dimension": (int(self.dimension), int(array.shape[0]))},
            )
        return array.tolist()

    def search_vector(self, vector: Any, k: int = 10) -> list[SearchResult]:
        """Top ``k`` documents for a query vector ``[H]``, scored by inner product."""
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        hits = self.searcher.search(self._vector(vector), int(k))
        return sort_results([SearchResult(str(hit.docid), 2.0 * float(hit.score) - 1.0) for hit in hits], int(k))

    def search(self, q: str, k: int = 10) -> list[SearchResult]:
        """Encode ``q`` with the query encoder and search (Pyserini's ``search(q, k)``)."""
        return self.search_vector(self.query_encoder.encode(q), k)

    def batch_search(
        self, queries: Sequence[str], q_ids: Sequence[str], k: int = 10, threads: int = 1
    ) -> dict[str, list[SearchResult]]:
        """``{qid: hits}`` for several queries (encoded in one batch when the encoder has ``encode_batch``).

        ``threads`` is accepted for Pyserini's signature; searches run one after another in this thread (Python
        threads calling into the JVM through pyjnius must be attached and detached by hand).
        """
        queries = list(queries)
        if hasattr(self.query_encoder, "encode_batch"):
            vectors = list(np.asarray(self.query_encoder.encode_batch(queries), dtype=np.float32))
        else:
            vectors = [self.query_encoder.encode(q) for q in queries]
        ids = [str(qid) for qid in q_ids]
        return {qid: self.search_vector(vector, k) for qid, vector in zip(ids, vectors)}

    def close(self) -> None:
        """Close the Lucene reader."""
        self.searcher.close()

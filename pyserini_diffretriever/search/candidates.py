"""Candidate generators: which documents of a multi-vector index are worth exact MaxSim re-scoring.

Why separate classes: each strategy has its own data (document means, a token-level FAISS index, the codec's
centroids), its own knobs and its own cost, and new ones keep coming (PLAID-style, learned). One small class
per strategy, behind :class:`CandidateGenerator`, lets :class:`~.multivector.MultiVectorSearcher` compose
them (PyLate separates its index from its retriever the same way) and lets each be tested alone.

=======================  ==================================================================  ==================
generator                proposes                                                            storage
=======================  ==================================================================  ==================
:class:`MeanCandidates`  the best documents by inner product of query and document means     float
:class:`TokenCandidates` ColBERT's: documents owning each query vector's token-index hits,    float, compressed
                         pre-ranked by MaxSim bounds from the hit scores alone
:class:`CentroidCandidates`  PLAID's centroid interaction over every document                compressed
=======================  ==================================================================  ==================

All work in the index's *search space* (a compressed index's projected space; the caller projects) and return,
per query, sorted document indices. The exhaustive strategy needs no candidates: see
:meth:`~.rescoring.MaxSimRescorer.exhaustive`.

To add a strategy, subclass :class:`CandidateGenerator` (``name``, ``storages``, ``candidates``) and register
it in :data:`GENERATORS`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .doc_means import load_doc_means
from .scoring import masked_means
from .token_index import configure_search, default_nprobe, load_token_index

logger = logging.getLogger(__name__)

__all__ = [
    "CENTROID_CANDIDATES",
    "GENERATORS",
    "MIN_TOKEN_HITS",
    "CandidateGenerator",
    "CentroidCandidates",
    "MeanCandidates",
    "TokenCandidates",
]

CENTROID_CANDIDATES = 4000
"""Compressed indexes: documents kept by centroid interaction for decoding (benchmark B5)."""

MIN_TOKEN_HITS = 100
"""Default token hits per query vector: ``max(k, MIN_TOKEN_HITS)``."""

DEFAULT_CHUNK_BYTES = 256 << 20
"""Memory for one block of query-by-document mean scores."""

NO_DOCUMENTS = np.zeros(0, dtype=np.int64)


class CandidateGenerator(ABC):
    """Proposes documents for exact re-scoring.

    Attributes
    ----------
    name : str
        The source name users pick it by (``sources=``).
    storages : frozenset of str
        Storage it works with: ``"float"`` (:class:`~.multivector_index.MultiVectorIndex`) and/or
        ``"compressed"`` (:class:`~.compressed_index.CompressedMultiVectorIndex`).
    """

    name: ClassVar[str]
    storages: ClassVar[frozenset[str]]

    def prepare(self) -> None:  # noqa: B027 - optional hook: most generators have nothing to build
        """Build or load what the generator needs now, not on the first query."""

    @abstractmethod
    def candidates(self, queries: Sequence[np.ndarray], k: int, depth: int, threads: int = 1) -> list[np.ndarray]:
        """Sorted document indices per query.

        Parameters
        ----------
        queries : sequence of np.ndarray
            Each query's non-empty ``[K_q, H]`` vectors in the index's search space.
        k : int
            Hits the caller will keep (a generator may use it to bound its work).
        depth : int
            Documents wanted per query (about; a generator may return fewer or, by its own floor, more).
        threads : int
            Threads the generator may use.
        """


class MeanCandidates(CandidateGenerator):
    """The ``depth`` best documents by the inner product of the query's and the documents' mean vectors.

    A document's K vectors come from one pass over one text and resemble each other, so this cheap search ranks
    close to MaxSim; it keeps recall high when a query vector's token neighbours all come from a few documents.
    """

    name = "means"
    storages = frozenset({"float"})

    def __init__(self, index: Any, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        self.index = index
        self.chunk_bytes = int(chunk_bytes)
        self._means: np.ndarray | None = None

    def prepare(self) -> None:
        self.means()

    def means(self) -> np.ndarray:
        """The ``[N, H]`` document means (built and written once, see :mod:`.doc_means`)."""
        if self._means is None:
            self._means = np.asarray(load_doc_means(self.index), dtype=np.float32)
        return self._means

    def candidates(self, queries: Sequence[np.ndarray], k: int, depth: int, threads: int = 1) -> list[np.ndarray]:
        means, num_docs = self.means(), self.index.num_docs
        bounds = np.concatenate([[0], np.cumsum([len(q) for q in queries])])
        query_means = masked_means(np.concatenate(list(queries)), bounds)
        depth = min(depth, num_docs)
        group = max(self.chunk_bytes // (4 * max(num_docs, 1)), 1)
        found = []
        for lo in range(0, len(queries), group):
            scores = query_means[lo : lo + group] @ means.T  # [group, N]
            top = (
                np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
                if depth < num_docs
                else np.broadcast_to(np.arange(num_docs), scores.shape)
            )
            found.extend(np.sort(row) for row in top)
        return found


class TokenCandidates(CandidateGenerator):
    """ColBERT's candidate generation: each query vector is searched in a token-level FAISS index over all
    document vectors; the documents owning the hits are bounded from the hit scores alone (:func:`prerank`).

    Parameters
    ----------
    index : MultiVectorIndex or CompressedMultiVectorIndex
        The storage; a compressed one brings its own token index (the codec's IVF filled with the codes).
    token_hits : int, optional
        Token hits per query vector (default ``max(k, MIN_TOKEN_HITS)``).
    nprobe : int, optional
        IVF lists probed per query vector (default :func:`~.token_index.default_nprobe`).
    ef_search : int, optional
        HNSW search beam (default ``max(token_hits, 64)``).
    token_index, nlist, factory
        Float indexes: which token index to use or build (:func:`~.token_index.load_token_index`).
    """

    name = "tokens"
    storages = frozenset({"float", "compressed"})

    def __init__(
        self,
        index: Any,
        *,
        token_hits: int | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
        token_index: str = "auto",
        nlist: int | None = None,
        factory: str | None = None,
    ) -> None:
        self.index = index
        self.token_hits = token_hits
        self.nprobe = nprobe
        self.ef_search = ef_search
        self._options = {"kind": token_index, "nlist": nlist, "factory": factory}
        self.token_index: Any = None
        self.info: Any = None

    def prepare(self) -> None:
        if self.token_index is not None:
            return
        if getattr(self.index, "compressed", False):
            self.token_index = self.index.token_index()
            self.info = CodecIndexInfo(self.index.codec.nlist, self.index.num_vectors)
            return
        self.token_index, self.info = load_token_index(self.index, **self._options)
        logger.info(
            "token index of %s: %s over %d vectors", self.index.index_dir, self.info.factory, self.info.num_vectors
        )

    def hits(self, query_matrix: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS ``(scores, rows)`` of every query vector (``[sum K_q, hits]``)."""
        import faiss

        self.prepare()
        per_vector = int(self.token_hits or max(k, MIN_TOKEN_HITS))
        nprobe = self.nprobe
        if nprobe is None and self.info.nlist:
            nprobe = default_nprobe(self.info.nlist)
        configure_search(self.token_index, nprobe=nprobe, ef_search=self.ef_search or max(per_vector, 64))
        faiss.omp_set_num_threads(threads)
        return self.token_index.search(query_matrix, min(per_vector, self.index.num_vectors))

    def candidates(self, queries: Sequence[np.ndarray], k: int, depth: int, threads: int = 1) -> list[np.ndarray]:
        scores, rows = self.hits(np.concatenate(list(queries)), k, threads)
        bounds = np.concatenate([[0], np.cumsum([len(q) for q in queries])])
        return [
            prerank(self.index.docs_of_rows, scores[lo:hi], rows[lo:hi], k, depth)
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]


def prerank(docs_of_rows: Any, token_scores: np.ndarray, token_rows: np.ndarray, k: int, limit: int) -> np.ndarray:
    """At most ``limit`` candidate documents from one query's token hits, without reading any vectors.

    Every hit gives a lower bound ``lb`` of a document's MaxSim (its best hit per query vector, clamped, summed);
    a query vector that missed the document adds at most its last hit's score, giving an upper bound ``ub``.
    Documents whose ``ub`` is below the ``k``-th best ``lb`` cannot enter the top ``k`` (exactly so for a flat
    token index) and are dropped; the rest are taken by decreasing ``ub``.

    Parameters
    ----------
    docs_of_rows : callable
        Row numbers -> document indices (the storage's ``docs_of_rows``).
    token_scores, token_rows : np.ndarray
        ``[K_q, hits]`` FAISS scores and row numbers (``-1``: no hit).
    k, limit : int
        Hits the caller keeps; documents returned at most.
    """
    n_query = token_rows.shape[0]
    valid = token_rows >= 0
    if not valid.any():
        return NO_DOCUMENTS
    query_of_hit = np.broadcast_to(np.arange(n_query)[:, None], token_rows.shape)[valid]
    keys = docs_of_rows(token_rows[valid]) * n_query + query_of_hit
    order = np.argsort(keys, kind="stable")
    keys, hit_scores = keys[order], token_scores[valid][order]
    firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    best = np.maximum(np.maximum.reduceat(hit_scores, firsts), 0.0)  # per (document, query vector)
    docs, queries = np.divmod(keys[firsts], n_query)
    last = valid.sum(axis=1) - 1
    threshold = np.where(last >= 0, token_scores[np.arange(n_query), np.maximum(last, 0)], 0.0).clip(min=0.0)
    doc_firsts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    docs = docs[doc_firsts]
    lower = np.add.reduceat(best, doc_firsts)
    # clipped: for a document every query vector hit, float rounding could put ``upper`` below ``lower``
    upper = lower + np.maximum(threshold.sum() - np.add.reduceat(threshold[queries], doc_firsts), 0.0)
    if len(docs) > k:
        keep = upper >= -np.partition(-lower, k - 1)[k - 1]
        docs, upper, lower = docs[keep], upper[keep], lower[keep]
    return np.sort(docs[np.lexsort((-lower, -upper))[:limit]])


class CentroidCandidates(CandidateGenerator):
    """PLAID's centroid interaction over every document of a compressed index
    (:meth:`~.compressed_index.CompressedMultiVectorIndex.centroid_scores`), keeping the best
    ``max(depth, centroid_candidates)``."""

    name = "centroids"
    storages = frozenset({"compressed"})

    def __init__(self, index: Any, centroid_candidates: int | None = None) -> None:
        self.index = index
        self.centroid_candidates = centroid_candidates

    def candidates(self, queries: Sequence[np.ndarray], k: int, depth: int, threads: int = 1) -> list[np.ndarray]:
        return [self._one(query, depth) for query in queries]

    def _one(self, query: np.ndarray, depth: int) -> np.ndarray:
        num_docs = self.index.num_docs
        keep = min(max(depth, self.centroid_candidates or CENTROID_CANDIDATES), num_docs)
        if keep >= num_docs:
            return np.arange(num_docs)
        return np.sort(np.argpartition(-self.index.centroid_scores(query), keep - 1)[:keep])


class CodecIndexInfo:
    """What a token search needs to know of a compressed index's IVF (its list count, for the default nprobe)."""

    kind = "codec"

    def __init__(self, nlist: int, num_vectors: int) -> None:
        self.nlist, self.num_vectors = nlist, num_vectors
        self.factory = f"IVF{nlist} (codec)"


GENERATORS: dict[str, type[CandidateGenerator]] = {
    generator.name: generator for generator in (MeanCandidates, TokenCandidates, CentroidCandidates)
}
"""Candidate sources by name (the ``sources=`` of :class:`~.multivector.MultiVectorSearcher`)."""

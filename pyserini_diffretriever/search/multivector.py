"""``MultiVectorSearcher``: clamped-MaxSim retrieval over a multi-vector index, Pyserini-style.

Why: neither Pyserini nor Anserini has a dense multi-vector (ColBERT-style) searcher (spec pyserini.md §5).
This one keeps Pyserini's searcher shape (``search(q, k)``, ``batch_search(queries, q_ids, k, threads)``,
results with ``.docid``/``.score``) so ``HybridSearcher`` and the run writers accept it unchanged.

Two modes:

``default``
    Candidate generation, then exact MaxSim re-scoring of the candidates from the memory-mapped ``vectors.npy``
    (scores are exact, recall approximate). Two candidate sources, both on by default:

    ``tokens``
        ColBERT's: each query vector is searched in the token-level FAISS index over all document vectors
        (:mod:`.token_index`); the documents owning the hits are bounded from the hit scores alone and the most
        promising ``candidates`` are kept.
    ``means``
        The ``candidates`` best documents by inner product of the query's and the documents' mean vectors
        (:mod:`.doc_means`). A document's K vectors come from one pass over one text and resemble each other,
        so this cheap search ranks close to MaxSim; it is what keeps recall high when a query vector's token
        neighbours all come from a few documents.
``exact``
    Exhaustive MaxSim over every document, streamed in bounded chunks: the reference ranking.

Compressed indexes (kind ``multi-compressed``, :mod:`.compressed_index`) are searched the same way in the codec's
projected space: the token index is the codec's IVF filled with the stored codes, candidates are re-scored by
MaxSim over their *decoded* codes (no float vector is read), and ``rerank=N`` optionally re-scores the best ``N``
exactly from the float ``multi`` folder the codes came from (``rerank_index``, default: the one recorded in the
manifest). The ``means`` source needs float document means and is not used for them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .compressed_index import CompressedMultiVectorIndex
from .doc_means import load_doc_means
from .index_format import IndexFormatError, IndexMismatchError, read_manifest
from .multivector_index import MultiVectorIndex
from .results import SearchResult
from .scoring import TopKAccumulator, masked_means, maxsim_scores, select_top_k
from .token_index import configure_search, default_nprobe, load_token_index

logger = logging.getLogger(__name__)

Mode = Literal["default", "exact"]
MODES = ("default", "exact")
SOURCES = ("means", "tokens", "centroids")
COMPRESSED_SOURCES = ("centroids", "tokens")
"""Candidate sources of a compressed index: ``centroids`` (PLAID's centroid interaction over every document,
:meth:`~.compressed_index.CompressedMultiVectorIndex.centroid_scores`) and ``tokens``; ``means`` needs floats."""

CENTROID_CANDIDATES = 4000
"""Compressed indexes: documents kept by centroid interaction for decoding (benchmark B5)."""

CANDIDATE_FACTOR = 2
MIN_CANDIDATES = 1000
"""Default documents taken from each candidate source: ``max(CANDIDATE_FACTOR x k, MIN_CANDIDATES)``."""

MIN_TOKEN_HITS = 100
"""Default token hits per query vector: ``max(k, MIN_TOKEN_HITS)``."""

DEFAULT_CHUNK_BYTES = 256 << 20
"""Memory for one block of similarities (exact-mode chunk of vectors, or query-by-document mean scores)."""

EXACT_QUERY_GROUP_COLUMNS = 1024
"""Exact mode: query vectors scored together against each chunk (more = fewer passes over the vectors)."""


class MultiVectorSearcher:
    """Search a multi-vector index with clamped MaxSim, ``sum_i max(0, max_j q_i . d_j)``.

    Parameters
    ----------
    index_dir : str or Path
        Multi-vector index folder (``vectors.npy``, ``offsets.npy``, ``docid``, ``manifest.json``).
    query_encoder : object, optional
        Has ``encode(query) -> np.ndarray [K_q, H]`` (and optionally ``encode_batch``); needed only for text
        queries. :class:`pyserini_diffretriever.encoders.DiffRetrieverQueryEncoder` with ``representation='multi'``.
    mode : {'default', 'exact'}
        Candidate generation + exact re-scoring, or exhaustive MaxSim (module docstring).
    candidates : int, optional
        Documents taken from each candidate source (default ``max(2k, 1000)``).
    nprobe : int, optional
        IVF lists probed per query vector (default :func:`~.token_index.default_nprobe` of the token index).
    threads : int
        Default threads for FAISS and for re-scoring the queries of a batch in parallel.
    sources : sequence of {'means', 'tokens', 'centroids'}, optional
        Candidate sources of the default mode (module docstring); default ``('means', 'tokens')`` for float
        indexes and :data:`COMPRESSED_SOURCES` for compressed ones.
    token_hits : int, optional
        Token hits retrieved per query vector (default ``max(k, 100)``).
    token_index : {'auto', 'flat', 'ivf', 'hnsw'}
        Token index kind to use (or build); ``auto`` takes an existing valid one, else builds by size.
    nlist : int, optional
        IVF list count when a token index is built.
    ef_search : int, optional
        HNSW search beam (default ``max(token_hits, 64)``).
    factory : str, optional
        FAISS factory string for the token index instead of ``token_index`` (e.g. ``"IVF4096,SQ8"`` to save memory).
    chunk_bytes : int
        Memory budget of one block of similarities.
    mmap : bool
        Memory-map ``vectors.npy`` (default).
    centroid_candidates : int, optional
        Compressed indexes: documents taken by centroid interaction (default :data:`CENTROID_CANDIDATES`).
    rerank : int
        Compressed indexes: re-score this many best documents exactly from float vectors (0: none).
    rerank_index : str or Path, optional
        The float ``multi`` folder for ``rerank`` (default: the manifest's ``source``).

    Examples
    --------
    >>> searcher = MultiVectorSearcher("indexes/cranfield.multi", DiffRetrieverQueryEncoder(
    ...     "Dream-org/Dream-v0-Instruct-7B", representation="multi"))        # doctest: +SKIP
    >>> hits = searcher.search("what similarity laws must be obeyed", k=10)  # doctest: +SKIP
    >>> hits[0].docid, hits[0].score                                         # doctest: +SKIP
    """

    def __init__(
        self,
        index_dir: str | Path,
        query_encoder: Any = None,
        mode: Mode = "default",
        candidates: int | None = None,
        nprobe: int | None = None,
        threads: int = 1,
        *,
        sources: Sequence[str] | None = None,
        token_hits: int | None = None,
        token_index: str = "auto",
        nlist: int | None = None,
        ef_search: int | None = None,
        factory: str | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        mmap: bool = True,
        rerank: int = 0,
        rerank_index: str | Path | None = None,
        centroid_candidates: int | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self.index = _open_storage(index_dir, mmap)
        self.compressed = isinstance(self.index, CompressedMultiVectorIndex)
        if sources is None:
            sources = COMPRESSED_SOURCES if self.compressed else ("means", "tokens")
        sources = tuple(sources)
        unusable = {"means"} if self.compressed else {"centroids"}
        if unusable & set(sources):
            raise ValueError(
                f"sources {sources!r}: {', '.join(sorted(unusable))} cannot be used with "
                + ("compressed" if self.compressed else "float")
                + " multi-vector indexes"
            )
        if not sources or any(source not in SOURCES for source in sources):
            raise ValueError(f"sources {sources!r}: choose one or more of {', '.join(SOURCES)}")
        for name, value in (
            ("candidates", candidates),
            ("nprobe", nprobe),
            ("ef_search", ef_search),
            ("threads", threads),
            ("chunk_bytes", chunk_bytes),
            ("token_hits", token_hits),
            ("nlist", nlist),
        ):
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if rerank and int(rerank) < 0:
            raise ValueError(f"rerank must be 0 or a positive integer, got {rerank!r}")
        self.rerank = int(rerank or 0)
        self.centroid_candidates = centroid_candidates
        self._rerank_index = self._open_rerank_index(rerank_index) if self.rerank else None
        self.query_encoder = query_encoder
        self.mode: Mode = mode
        self.candidates = candidates
        self.nprobe = nprobe
        self.threads = int(threads)
        self.sources = sources
        self.token_hits = token_hits
        self.ef_search = ef_search
        self.chunk_bytes = int(chunk_bytes)
        self._token_index_options = {"kind": token_index, "nlist": nlist, "factory": factory}
        self._token_index: Any = None
        self._doc_means: np.ndarray | None = None
        self.token_index_info = None
        if mode == "default":  # build what is missing now, not on the first query
            if "tokens" in sources:
                self._ensure_token_index()
            if "means" in sources:
                self._ensure_doc_means()

    # -- Pyserini-like attributes -------------------------------------------------------------------------
    @property
    def docids(self) -> list[str]:
        """Docids in index order."""
        return self.index.docids

    @property
    def num_docs(self) -> int:
        """Number of documents."""
        return self.index.num_docs

    @property
    def dimension(self) -> int:
        """Vector dimension ``H``."""
        return self.index.dimension

    def _open_rerank_index(self, path: str | Path | None) -> MultiVectorIndex:
        if not self.compressed:
            raise ValueError("rerank applies to compressed (multi-compressed) indexes only")
        source = path or self.index.manifest.get("source")
        if not source:
            raise IndexFormatError(f"{self.index.index_dir}: no float multi-vector folder recorded; pass rerank_index")
        source = Path(source)
        if not source.is_absolute():
            source = self.index.index_dir / source
        floats = MultiVectorIndex(source)
        if floats.num_docs != self.index.num_docs or floats.docids[:1] != self.index.docids[:1]:
            raise IndexFormatError(f"{source}: not the float vectors of {self.index.index_dir} (documents differ)")
        return floats

    def _ensure_token_index(self) -> Any:
        if self._token_index is None and self.compressed:
            self._token_index = self.index.token_index()
            self.token_index_info = _CodecIndexInfo(self.index.codec.nlist, self.index.num_vectors)
        if self._token_index is None:
            self._token_index, self.token_index_info = load_token_index(self.index, **self._token_index_options)
            logger.info(
                "token index of %s: %s over %d vectors",
                self.index.index_dir,
                self.token_index_info.factory,
                self.token_index_info.num_vectors,
            )
        return self._token_index

    # -- query handling -------------------------------------------------------------------------------------
    def _as_query_vectors(self, query: Any) -> np.ndarray:
        if isinstance(query, str):
            if self.query_encoder is None:
                raise ValueError("a text query needs a query_encoder; pass one or search with a [K, H] array")
            query = self.query_encoder.encode(query)
        return self._check_vectors(query)

    def _check_vectors(self, vectors: Any) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ValueError(f"query vectors must be [K, H] (or [H]); got shape {array.shape}")
        if array.shape[0] and array.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"{self.index.index_dir}: query vectors have dimension {array.shape[1]}, the index {self.dimension} "
                "(query encoder and index come from different backbones)",
                {"dimension": (self.dimension, array.shape[1])},
            )
        # all-zero (truncated) query vectors contribute max(0, 0) = 0 to every score: drop them, so a query
        # without any non-zero vector is empty and gets no hits in either mode
        return np.ascontiguousarray(array[np.any(array != 0, axis=1)])

    def _encode_all(self, queries: Sequence[Any]) -> list[np.ndarray]:
        if isinstance(queries, np.ndarray) and queries.ndim == 3:
            return [self._check_vectors(q) for q in queries]
        texts = [q for q in queries if isinstance(q, str)]
        if texts and len(texts) == len(queries) and hasattr(self.query_encoder, "encode_batch"):
            return [self._check_vectors(v) for v in self.query_encoder.encode_batch(list(queries))]
        return [self._as_query_vectors(q) for q in queries]

    def _results(self, doc_indices: np.ndarray, scores: np.ndarray) -> list[SearchResult]:
        docids = self.index.docids
        return [SearchResult(docids[i], float(s)) for i, s in zip(doc_indices.tolist(), scores.tolist())]

    # -- default mode -------------------------------------------------------------------------------------
    def _ensure_doc_means(self) -> np.ndarray:
        if self._doc_means is None:
            self._doc_means = np.asarray(load_doc_means(self.index), dtype=np.float32)
        return self._doc_means

    def _default_candidates(self, k: int) -> int:
        return int(self.candidates or max(CANDIDATE_FACTOR * k, MIN_CANDIDATES))

    def _mean_candidates(self, queries: list[np.ndarray], depth: int) -> list[np.ndarray]:
        """Top ``depth`` documents of each query by inner product of the mean vectors."""
        means = self._ensure_doc_means()
        query_means = masked_means(np.concatenate(queries), np.concatenate([[0], np.cumsum([len(q) for q in queries])]))
        depth = min(depth, self.num_docs)
        group = max(self.chunk_bytes // (4 * max(self.num_docs, 1)), 1)
        found = []
        for lo in range(0, len(queries), group):
            scores = query_means[lo : lo + group] @ means.T  # [group, N]
            top = (
                np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
                if depth < self.num_docs
                else np.broadcast_to(np.arange(self.num_docs), scores.shape)
            )
            found.extend(np.sort(row) for row in top)
        return found

    def _centroid_candidates(self, query: np.ndarray, depth: int) -> np.ndarray:
        """The best documents of one (projected) query by centroid interaction."""
        scores = self.index.centroid_scores(query)
        keep = min(max(depth, self.centroid_candidates or CENTROID_CANDIDATES), self.num_docs)
        if keep >= self.num_docs:
            return np.arange(self.num_docs)
        return np.sort(np.argpartition(-scores, keep - 1)[:keep])

    def _token_hits(self, query_matrix: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        token_index = self._ensure_token_index()
        per_vector = int(self.token_hits or max(k, MIN_TOKEN_HITS))
        nprobe = self.nprobe
        if nprobe is None and self.token_index_info.nlist:
            nprobe = default_nprobe(self.token_index_info.nlist)
        configure_search(token_index, nprobe=nprobe, ef_search=self.ef_search or max(per_vector, 64))
        faiss.omp_set_num_threads(threads)
        return token_index.search(query_matrix, min(per_vector, self.index.num_vectors))

    def _prerank(self, token_scores: np.ndarray, token_rows: np.ndarray, k: int, limit: int) -> np.ndarray:
        """At most ``limit`` candidate documents from one query's token hits, without reading any vectors.

        Every hit gives a lower bound ``lb`` of a document's MaxSim (its best hit per query vector, clamped,
        summed); a query vector that missed the document adds at most its last hit's score, giving an upper
        bound ``ub``. Documents whose ``ub`` is below the ``k``-th best ``lb`` cannot enter the top ``k`` (exactly
        so for a flat token index) and are dropped; the rest are taken by decreasing ``ub``.
        """
        n_query = token_rows.shape[0]
        valid = token_rows >= 0
        if not valid.any():
            return np.zeros(0, dtype=np.int64)
        query_of_hit = np.broadcast_to(np.arange(n_query)[:, None], token_rows.shape)[valid]
        keys = self.index.docs_of_rows(token_rows[valid]) * n_query + query_of_hit
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

    def _rescore(self, query: np.ndarray, docs: np.ndarray, k: int) -> list[SearchResult]:
        if docs.size == 0:
            return []
        doc_rows, local = self.index.gather(docs)
        scores = maxsim_scores(query, np.array([0, len(query)]), doc_rows, local)[:, 0]
        top = select_top_k(scores, k, self.index.tie_ranks[docs])
        return self._results(docs[top], scores[top])

    def _search_default(self, queries: list[np.ndarray], k: int, threads: int) -> list[list[SearchResult]]:
        active = [i for i, q in enumerate(queries) if len(q)]
        results: list[list[SearchResult]] = [[] for _ in queries]
        if not active:
            return results
        depth = self._default_candidates(k)
        asked = [queries[i] for i in active]
        candidates = [np.zeros(0, dtype=np.int64) for _ in asked]
        if "means" in self.sources:
            candidates = [np.union1d(a, b) for a, b in zip(candidates, self._mean_candidates(asked, depth))]
        if "centroids" in self.sources:
            candidates = [np.union1d(a, self._centroid_candidates(q, depth)) for a, q in zip(candidates, asked)]
        if "tokens" in self.sources:
            scores, rows = self._token_hits(np.concatenate(asked), k, threads)
            bounds = np.concatenate([[0], np.cumsum([len(q) for q in asked])])
            candidates = [
                np.union1d(found, self._prerank(scores[lo:hi], rows[lo:hi], k, depth))
                for found, lo, hi in zip(candidates, bounds[:-1], bounds[1:])
            ]
        jobs = list(zip(asked, candidates))
        if threads > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                found = list(pool.map(lambda job: self._rescore(*job, k), jobs))
        else:
            found = [self._rescore(*job, k) for job in jobs]
        for position, hits in zip(active, found):
            results[position] = hits
        return results

    # -- exact mode ---------------------------------------------------------------------------------------
    def _search_exact(self, queries: list[np.ndarray], k: int) -> list[list[SearchResult]]:
        results: list[list[SearchResult]] = [[] for _ in queries]
        group: list[int] = []
        columns = 0
        for position, query in enumerate(queries):
            if len(query) == 0:
                continue
            if group and columns + len(query) > EXACT_QUERY_GROUP_COLUMNS:
                self._exact_group(queries, group, k, results)
                group, columns = [], 0
            group.append(position)
            columns += len(query)
        if group:
            self._exact_group(queries, group, k, results)
        return results

    def _exact_group(
        self, queries: list[np.ndarray], group: list[int], k: int, results: list[list[SearchResult]]
    ) -> None:
        matrix = np.concatenate([queries[i] for i in group])
        query_offsets = np.concatenate([[0], np.cumsum([len(queries[i]) for i in group])])
        # one chunk holds its rows (float32, then float64) and their float64 [rows, columns] similarities
        max_rows = max(self.chunk_bytes // (12 * self.dimension + 16 * matrix.shape[0]), 1)
        tops = [TopKAccumulator(k, self.index.tie_ranks) for _ in group]
        for start, end, rows, local in self.index.iter_chunks(max_rows):
            scores = maxsim_scores(matrix, query_offsets, rows, local)
            doc_indices = np.arange(start, end)
            for column, top in enumerate(tops):
                top.update(doc_indices, scores[:, column])
        for position, top in zip(group, tops):
            results[position] = self._results(*top.result())

    # -- public API ---------------------------------------------------------------------------------------
    def search(self, q: str | np.ndarray, k: int = 10, threads: int | None = None) -> list[SearchResult]:
        """Search with one query.

        Parameters
        ----------
        q : str or np.ndarray
            Query text (encoded with ``query_encoder``) or its ``[K_q, H]`` vectors.
        k : int
            Number of hits.
        threads : int, optional
            FAISS threads (default: the searcher's ``threads``).

        Returns
        -------
        list of SearchResult
            At most ``k`` hits ordered by ``(-score, docid)``; empty for a query without vectors.
        """
        return self._search([self._as_query_vectors(q)], k, threads or self.threads)[0]

    def batch_search(
        self,
        queries: Sequence[str] | Sequence[np.ndarray],
        q_ids: Sequence[str],
        k: int = 10,
        threads: int | None = None,
    ) -> dict[str, list[SearchResult]]:
        """Search with many queries (encoded with ``encode_batch`` when the encoder has it).

        Parameters
        ----------
        queries : sequence of str or np.ndarray
            Query texts or ``[K_q, H]`` arrays.
        q_ids : sequence of str
            Query ids, same length.
        k : int
            Number of hits per query.
        threads : int, optional
            Threads for FAISS and parallel re-scoring (default: the searcher's ``threads``).

        Returns
        -------
        dict
            ``{qid: [SearchResult, ...]}`` in the order of ``q_ids``.
        """
        if len(queries) != len(q_ids):
            raise ValueError(f"{len(queries)} queries but {len(q_ids)} query ids")
        vectors = self._encode_all(queries)
        hits = self._search(vectors, k, threads or self.threads)
        return {str(qid): result for qid, result in zip(q_ids, hits)}

    def _search(self, queries: list[np.ndarray], k: int, threads: int) -> list[list[SearchResult]]:
        if k < 1 or not queries:
            return [[] for _ in queries]
        searched = [self.index.project(q) if len(q) else q for q in queries] if self.compressed else queries
        depth = max(k, self.rerank)
        if self.mode == "exact":
            found = self._search_exact(searched, depth)
        else:
            found = self._search_default(searched, depth, threads)
        if self._rerank_index is None:
            return found
        return [self._rerank(query, hits, k) for query, hits in zip(queries, found)]

    def _rerank(self, query: np.ndarray, hits: list[SearchResult], k: int) -> list[SearchResult]:
        """Exact MaxSim from the float vectors for the compressed search's best documents."""
        if not hits:
            return hits
        position = self._docid_positions
        docs = np.sort(np.array([position[hit.docid] for hit in hits[: self.rerank]], dtype=np.int64))
        rows, local = self._rerank_index.gather(docs)
        scores = maxsim_scores(query, np.array([0, len(query)]), rows, local)[:, 0]
        top = select_top_k(scores, k, self.index.tie_ranks[docs])
        return self._results(docs[top], scores[top])

    @cached_property
    def _docid_positions(self) -> dict[str, int]:
        return {docid: i for i, docid in enumerate(self.index.docids)}


class _CodecIndexInfo:
    """What the searcher needs to know of a compressed index's IVF (its list count, for the default nprobe)."""

    kind = "codec"

    def __init__(self, nlist: int, num_vectors: int) -> None:
        self.nlist, self.num_vectors = nlist, num_vectors
        self.factory = f"IVF{nlist} (codec)"


def _open_storage(index_dir: str | Path, mmap: bool) -> MultiVectorIndex | CompressedMultiVectorIndex:
    """The storage class for a multi-vector folder's kind (float vectors, or codec codes)."""
    if read_manifest(index_dir)["kind"] == "multi-compressed":
        return CompressedMultiVectorIndex(index_dir)
    return MultiVectorIndex(index_dir, mmap=mmap)

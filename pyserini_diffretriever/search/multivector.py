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

The searcher is a facade over three parts, each its own module (PyLate style): the storage
(:mod:`.multivector_index`, :mod:`.compressed_index`), the candidate generators (:mod:`.candidates`, one class
per source) and the scorer (:mod:`.rescoring`: exact MaxSim re-scoring, the exhaustive ranking and re-ranking).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .candidates import CENTROID_CANDIDATES, GENERATORS, MIN_TOKEN_HITS, CandidateGenerator
from .compressed_index import CompressedMultiVectorIndex
from .index_format import IndexFormatError, IndexMismatchError, read_manifest
from .kinds import INDEX_KINDS, check_options
from .multivector_index import MultiVectorIndex
from .rescoring import EXACT_QUERY_GROUP_COLUMNS, NOTHING, MaxSimRescorer, Ranked
from .results import SearchResult

logger = logging.getLogger(__name__)

__all__ = [
    "CENTROID_CANDIDATES",
    "COMPRESSED_SOURCES",
    "EXACT_QUERY_GROUP_COLUMNS",
    "MIN_TOKEN_HITS",
    "MODES",
    "SOURCES",
    "MultiVectorSearcher",
]

Mode = Literal["default", "exact"]
MODES = ("default", "exact")
SOURCES = tuple(GENERATORS)
FLOAT_SOURCES = ("means", "tokens")
COMPRESSED_SOURCES = ("centroids", "tokens")
"""Candidate sources of a compressed index: ``centroids`` (PLAID's centroid interaction over every document,
:meth:`~.compressed_index.CompressedMultiVectorIndex.centroid_scores`) and ``tokens``; ``means`` needs floats."""

CANDIDATE_FACTOR = 2
MIN_CANDIDATES = 1000
"""Default documents taken from each candidate source: ``max(CANDIDATE_FACTOR x k, MIN_CANDIDATES)``."""

DEFAULT_CHUNK_BYTES = 256 << 20
"""Memory for one block of similarities (exact-mode chunk of vectors, or query-by-document mean scores)."""


class MultiVectorSearcher:
    """Search a multi-vector index with clamped MaxSim, ``sum_i max(0, max_j q_i . d_j)``.

    Parameters
    ----------
    index_dir : str or Path
        Multi-vector index folder (``vectors.npy``, ``offsets.npy``, ``docid``, ``manifest.json``), or a
        compressed one (``multi-compressed``).
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
        Candidate sources of the default mode (:mod:`.candidates`); default ``('means', 'tokens')`` for float
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

    Options of one storage only (``token_index``, ``nlist``, ``ef_search``, ``factory``, ``mmap``: float;
    ``centroid_candidates``, ``rerank``, ``rerank_index``: compressed) are refused for the other
    (:class:`~.kinds.KindOptionError`, naming the option and the kind).

    Attributes
    ----------
    index : MultiVectorIndex or CompressedMultiVectorIndex
        The storage.
    generators : dict
        ``{source: CandidateGenerator}`` used by the default mode, in ``sources`` order.
    rescorer : MaxSimRescorer
        Exact MaxSim over the storage.

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
        _check_positive(
            candidates=candidates,
            nprobe=nprobe,
            ef_search=ef_search,
            threads=threads,
            chunk_bytes=chunk_bytes,
            token_hits=token_hits,
            nlist=nlist,
            centroid_candidates=centroid_candidates,
        )
        if rerank and int(rerank) < 0:
            raise ValueError(f"rerank must be 0 or a positive integer, got {rerank!r}")
        self.index = _open_storage(index_dir, mmap)
        self.compressed = isinstance(self.index, CompressedMultiVectorIndex)
        storage_options = {
            "token_index": None if token_index == "auto" else token_index,
            "nlist": nlist,
            "ef_search": ef_search,
            "factory": factory,
            "mmap": None if mmap else False,
            "centroid_candidates": centroid_candidates,
            "rerank_index": rerank_index,
        }
        given = {name: value for name, value in storage_options.items() if value is not None}
        check_options(given, INDEX_KINDS[self.index.manifest["kind"]], where=self.index.index_dir)
        self.sources = _check_sources(sources, self.compressed)
        self.query_encoder = query_encoder
        self.mode: Mode = mode
        self.candidates = candidates
        self.threads = int(threads)
        self.chunk_bytes = int(chunk_bytes)
        self.rescorer = MaxSimRescorer(self.index)
        self.rerank = int(rerank or 0)
        self.reranker = self._open_reranker(rerank_index) if self.rerank else None
        knobs = {
            "means": {"chunk_bytes": chunk_bytes},
            "tokens": {
                "token_hits": token_hits,
                "nprobe": nprobe,
                "ef_search": ef_search,
                "token_index": token_index,
                "nlist": nlist,
                "factory": factory,
            },
            "centroids": {"centroid_candidates": centroid_candidates},
        }
        self.generators: dict[str, CandidateGenerator] = {
            source: GENERATORS[source](self.index, **knobs.get(source, {})) for source in self.sources
        }
        if mode == "default":  # build what is missing now, not on the first query
            for generator in self.generators.values():
                generator.prepare()

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

    @property
    def token_index_info(self) -> Any:
        """The token index's description (``None`` until one is loaded or built)."""
        tokens = self.generators.get("tokens")
        return getattr(tokens, "info", None)

    def _open_reranker(self, path: str | Path | None) -> MaxSimRescorer:
        """Exact MaxSim over the float ``multi`` folder the compressed codes came from."""
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
        return MaxSimRescorer(floats, tie_ranks=self.index.tie_ranks)

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

    def _results(self, ranked: Ranked) -> list[SearchResult]:
        docids = self.index.docids
        doc_indices, scores = ranked
        return [SearchResult(docids[i], float(s)) for i, s in zip(doc_indices.tolist(), scores.tolist())]

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
            ranked = self.rescorer.exhaustive(searched, depth, self.chunk_bytes)
        else:
            ranked = self._search_candidates(searched, depth, threads)
        if self.reranker is not None:  # exact MaxSim from the float vectors for the compressed search's best
            ranked = [
                self.reranker.rescore(query, np.sort(docs[: self.rerank]), k)
                for query, (docs, _) in zip(queries, ranked)
            ]
        return [self._results(found) for found in ranked]

    def _search_candidates(self, queries: list[np.ndarray], k: int, threads: int) -> list[Ranked]:
        """Default mode: the union of every source's candidates, re-scored exactly."""
        active = [i for i, q in enumerate(queries) if len(q)]
        results: list[Ranked] = [NOTHING for _ in queries]
        if not active:
            return results
        depth = int(self.candidates or max(CANDIDATE_FACTOR * k, MIN_CANDIDATES))
        asked = [queries[i] for i in active]
        found = [np.zeros(0, dtype=np.int64) for _ in asked]
        for source in self.sources:
            proposed = self.generators[source].candidates(asked, k, depth, threads)
            found = [np.union1d(a, b) for a, b in zip(found, proposed)]
        jobs = list(zip(asked, found))
        if threads > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                scored = list(pool.map(lambda job: self.rescorer.rescore(*job, k), jobs))
        else:
            scored = [self.rescorer.rescore(*job, k) for job in jobs]
        for position, ranked in zip(active, scored):
            results[position] = ranked
        return results


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_sources(sources: Sequence[str] | None, compressed: bool) -> tuple[str, ...]:
    """The candidate sources, defaulted by storage; ones the storage cannot serve are refused."""
    chosen = tuple(COMPRESSED_SOURCES if compressed else FLOAT_SOURCES) if sources is None else tuple(sources)
    if not chosen or any(source not in GENERATORS for source in chosen):
        raise ValueError(f"sources {chosen!r}: choose one or more of {', '.join(SOURCES)}")
    storage = "compressed" if compressed else "float"
    unusable = sorted(source for source in chosen if storage not in GENERATORS[source].storages)
    if unusable:
        raise ValueError(
            f"sources {chosen!r}: {', '.join(unusable)} cannot be used with {storage} multi-vector indexes"
        )
    return chosen


def _open_storage(index_dir: str | Path, mmap: bool) -> MultiVectorIndex | CompressedMultiVectorIndex:
    """The storage class for a multi-vector folder's kind (float vectors, or codec codes)."""
    if read_manifest(index_dir)["kind"] == "multi-compressed":
        return CompressedMultiVectorIndex(index_dir)
    return MultiVectorIndex(index_dir, mmap=mmap)

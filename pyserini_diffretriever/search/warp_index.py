"""Search a cell-major (``multi-warp``) multi-vector index: WARP_SELECT over memory-mapped codes.

Layout (written by :mod:`pyserini_diffretriever.indexing.compress_warp`)::

    DIR/codec.npz         projection, centroids, bucket cutoffs/weights, SQ8 ranges (small; kept in memory)
    DIR/codes.npy         uint8 [num_vectors, code_bytes]  small-tier codes, CELL-MAJOR (memory-mapped)
    DIR/doc_numbers.npy   int32 [num_vectors]              document of each code (memory-mapped)
    DIR/doc_rows.npy      int32 [num_vectors]              row in codes.npy of each vector, DOCUMENT order (memory-mapped)
    DIR/cell_offsets.npy  int64 [nlist + 1]                rows of cell c
    DIR/rerank.npy        uint8 [num_vectors, H]           SQ8 re-rank tier, DOCUMENT order (memory-mapped; optional)
    DIR/offsets.npy       int64 [N + 1]                    rows of document i in rerank.npy
    DIR/docid             one id per line
    DIR/manifest.json     kind "multi-warp", codec facts, the build-time recall estimate, search defaults

Search of one query (``K`` vectors ``[K, H]``), after WARP (Scheerer et al., SIGIR 2025):

1. project the query vectors and score all centroids (``K x nlist``);
2. per query vector, the ``nprobe`` best cells; the score of the first unprobed cell is the *imputed* score of a
   document that has no vector in the probed cells (WARP's missing-similarity estimate: a document absent from
   the best cells scores at most about that much);
3. score every code of the probed cells through per-query-vector byte tables (:mod:`..indexing.warp_kernel`),
   keep the best per (document, query vector), impute the missing ones, clamp at 0, sum: the candidates'
   approximate MaxSim;
4. re-score the best ``candidates`` (at least ``rerank``) of them by their *whole* small-tier MaxSim: every vector of the document,
   found through ``doc_rows.npy``, scored through the same byte tables plus its own centroid's score (PLAID's
   last stage, without decompressing). Why: WARP's imputation stands in for every vector outside the probed
   cells, and on LLM-like states it ranks far worse than the codes themselves (issue 17's diagnosis: 0.56 vs
   0.65 recall@100 on the same candidates with 2-bit codes);
5. optionally re-score the best ``rerank`` exactly from the SQ8 tier (full dimension, read from the memory map
   for those documents only).

The work per query is ``nprobe x (cell size)`` codes per query vector plus ``candidates x K_p`` codes, and the
cell size grows like ``sqrt(n)`` (:func:`..indexing.warp_codec.default_cells`), so it does not scan the
collection. Memory: the codes,
document numbers and re-rank tier stay memory-mapped (page cache, shared, evictable); anonymous memory holds
the codec, the offsets and the docids.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..indexing import warp_kernel
from ..indexing.warp_codec import WarpCodec
from ..layouts import (
    CODES_FILE,
    DOCID_FILE,
    OFFSETS_FILE,
    WARP_CELL_OFFSETS_FILE,
    WARP_CODEC_FILE,
    WARP_DOC_NUMBERS_FILE,
    WARP_DOC_ROWS_FILE,
    WARP_RERANK_FILE,
)
from .index_format import IndexFormatError, IndexMismatchError, read_docids, read_manifest
from .results import SearchResult, sort_results

logger = logging.getLogger(__name__)

KIND = "multi-warp"
CODEC_NAME = WARP_CODEC_FILE
CODES_NAME = CODES_FILE
DOC_NUMBERS_NAME = WARP_DOC_NUMBERS_FILE
DOC_ROWS_NAME = WARP_DOC_ROWS_FILE
CELL_OFFSETS_NAME = WARP_CELL_OFFSETS_FILE
RERANK_NAME = WARP_RERANK_FILE
OFFSETS_NAME = OFFSETS_FILE
DOCID_NAME = DOCID_FILE

DEFAULT_NPROBE = 64
"""Cells probed per query vector where the build measured nothing (``estimate_queries=0``; otherwise the manifest
holds the setting tuned on the collection, :func:`..indexing.compress_warp.tune_search`). WARP uses 32; on B9's
20k LLM-like set the exact top-100 documents have a vector in the probed cells only 0.89 of the time at 32 and
0.96 at 64 (1,024 cells; issue 17's diagnosis), while at 100k nprobe 8 loses nothing."""

DEFAULT_CANDIDATES = 2000
"""WARP candidates re-scored by their whole small-tier MaxSim where the build measured nothing (issue 17's
diagnosis: 1,000-2,000 keep all but a fraction of a percent of what re-scoring every candidate finds)."""


class _OneBlasThread:
    """BLAS limited to one thread while any search runs (:func:`one_blas_thread`).

    The per-query products (``[K, H] x [H, d]``) are too small to share, and on a busy machine a second OpenBLAS
    thread makes them 10x slower (measured: 1.3 -> 15.5 ms for one query's projection at load 9 on 2 cores).
    OpenBLAS only has a process-wide setting, so concurrent searches (the server runs this kind from several
    request threads) share one limit: the first to enter sets it, the last to leave restores the caller's.
    Caveat (numpy's OpenBLAS 0.3.34, checked): once BLAS has run in the main thread, a thread count set from
    another thread is not applied, so the guard holds for searches started from the main thread (the CLI,
    ``batch_search``, benchmarks); a server should also start with ``OPENBLAS_NUM_THREADS=1``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._limit: Any = None
        self._controller: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                if self._controller is None:
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limit = self._controller.limit(limits=1, user_api="blas")
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._limit.restore_original_limits()
                self._limit = None


_ONE_BLAS_THREAD = _OneBlasThread()


def one_blas_thread() -> _OneBlasThread:
    """``with one_blas_thread():`` -- BLAS on one thread for the duration (re-entrant and shared across threads;
    :meth:`WarpSearcher.batch_search` enters it once around its worker threads)."""
    return _ONE_BLAS_THREAD


@dataclass
class SettingsRanking:
    """:meth:`WarpSearcher.rank_settings`: documents per ``(candidates, rerank)`` and the work of the pass
    (codes scored in the probed cells; WARP candidates found)."""

    rankings: dict[tuple[int, int], np.ndarray]
    probed_codes: int
    warp_candidates: int


class WarpIndex:
    """The files of a ``multi-warp`` folder, validated and memory-mapped (module docstring).

    Raises
    ------
    IndexFormatError
        A missing file, another kind, or files that disagree with each other or with the manifest.
    """

    def __init__(self, index_dir: str | Path) -> None:
        self.index_dir = Path(index_dir)
        self.manifest: dict[str, Any] = read_manifest(self.index_dir)
        if self.manifest["kind"] != KIND:
            raise IndexFormatError(f"{self.index_dir}: manifest kind is {self.manifest['kind']!r}, expected {KIND!r}")
        try:
            self.codec = WarpCodec.load(self.index_dir / CODEC_NAME)
            self.codes = np.load(self.index_dir / CODES_NAME, mmap_mode="r", allow_pickle=False)
            self.doc_numbers = np.load(self.index_dir / DOC_NUMBERS_NAME, mmap_mode="r", allow_pickle=False)
            rows_path = self.index_dir / DOC_ROWS_NAME  # absent in folders built before the exact small stage
            self.doc_rows = np.load(rows_path, mmap_mode="r", allow_pickle=False) if rows_path.is_file() else None
            self.cell_offsets = np.load(self.index_dir / CELL_OFFSETS_NAME, allow_pickle=False).astype(np.int64)
            self.offsets = np.load(self.index_dir / OFFSETS_NAME, allow_pickle=False).astype(np.int64)
            rerank_path = self.index_dir / RERANK_NAME
            self.rerank_codes = np.load(rerank_path, mmap_mode="r") if rerank_path.is_file() else None
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{self.index_dir}: unreadable multi-warp index ({error})") from error
        self.docids: list[str] = read_docids(self.index_dir / DOCID_NAME)
        self._check()

    def _check(self) -> None:
        n, codec = len(self.codes), self.codec
        problems = []
        if self.codes.ndim != 2 or self.codes.dtype != np.uint8 or self.codes.shape[1] != codec.code_bytes:
            problems.append(
                f"{CODES_NAME} is {self.codes.dtype} {list(self.codes.shape)}, not uint8 [n, {codec.code_bytes}]"
            )
        if self.doc_numbers.shape != (n,):
            problems.append(f"{DOC_NUMBERS_NAME} has {self.doc_numbers.shape} entries for {n} codes")
        if self.doc_rows is not None and self.doc_rows.shape != (n,):
            problems.append(f"{DOC_ROWS_NAME} has {self.doc_rows.shape} entries for {n} codes")
        if self.cell_offsets.shape != (codec.nlist + 1,) or self.cell_offsets[-1] != n:
            problems.append(f"{CELL_OFFSETS_NAME} does not describe {codec.nlist} cells of {n} codes")
        if len(self.offsets) != len(self.docids) + 1 or self.offsets[-1] != n:
            problems.append(f"{OFFSETS_NAME}, {DOCID_NAME} and the {n} codes disagree")
        if self.rerank_codes is not None and self.rerank_codes.shape != (n, codec.rerank_bytes):
            problems.append(f"{RERANK_NAME} is {list(self.rerank_codes.shape)}, expected [{n}, {codec.rerank_bytes}]")
        if self.manifest.get("num_docs") != len(self.docids):
            problems.append(f"manifest num_docs {self.manifest.get('num_docs')} != {len(self.docids)} docids")
        if problems:
            raise IndexFormatError(f"{self.index_dir}: inconsistent multi-warp index: {'; '.join(problems)}")

    def prefetch_rerank(self, docs: np.ndarray) -> None:
        """Ask the kernel to read the re-rank rows of ``docs`` into the page cache, all at once, before they are
        scored (``posix_fadvise(WILLNEED)``; a no-op where the OS has none or the tier is absent).

        Why: the scoring loop touches one document's rows at a time, so a cold memory map reads them one page
        fault at a time. At 1M passages the SQ8 tier (57 GB) does not fit the page cache, and re-scoring 1,000
        cold documents took 4.9 s that way against 0.3 s with the reads announced first (measured on this
        2-core machine's virtual disk): the disk serves the announced reads in parallel."""
        if self.rerank_codes is None or not hasattr(os, "posix_fadvise") or len(docs) == 0:
            return
        docs = np.asarray(docs, dtype=np.int64)
        row_bytes = int(self.rerank_codes.shape[1])
        base = int(getattr(self.rerank_codes, "offset", 0))
        starts = (base + self.offsets[docs] * row_bytes).tolist()
        ends = (base + self.offsets[docs + 1] * row_bytes).tolist()
        descriptor = os.open(self.index_dir / RERANK_NAME, os.O_RDONLY)
        try:
            for start, end in zip(starts, ends):
                os.posix_fadvise(descriptor, start, end - start, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(descriptor)

    @property
    def num_docs(self) -> int:
        return len(self.docids)

    @property
    def num_vectors(self) -> int:
        return int(len(self.codes))

    @property
    def dimension(self) -> int:
        return self.codec.dimension

    @property
    def encoder_settings(self) -> dict[str, Any]:
        return self.manifest.get("encoder", {})


class WarpSearcher:
    """Pyserini-shaped searcher of a ``multi-warp`` folder (module docstring).

    Parameters
    ----------
    index_dir : str or Path or WarpIndex
        The folder (or an opened :class:`WarpIndex`).
    query_encoder : optional
        Anything with ``encode(text) -> [K, H]`` array, for text queries.
    nprobe : int, optional
        Cells per query vector (default: the manifest's ``search.nprobe``, else :data:`DEFAULT_NPROBE`).
    candidates : int, optional
        Best WARP candidates re-scored by their whole small-tier MaxSim (0: WARP's imputed scores are final;
        default: the manifest's ``search.candidates``, else :data:`DEFAULT_CANDIDATES` where the folder has
        ``doc_rows.npy``).
    rerank : int, optional
        Candidates re-scored from the SQ8 tier (0: none; default: the manifest's ``search.rerank``).
    use_numba : bool
        Use the compiled kernel (the numpy one otherwise; same results).
    """

    def __init__(
        self,
        index_dir: str | Path | WarpIndex,
        query_encoder: Any = None,
        *,
        nprobe: int | None = None,
        candidates: int | None = None,
        rerank: int | None = None,
        use_numba: bool = True,
    ) -> None:
        self.index = index_dir if isinstance(index_dir, WarpIndex) else WarpIndex(index_dir)
        self.query_encoder = query_encoder
        defaults = self.index.manifest.get("search", {})
        self.nprobe = int(nprobe if nprobe is not None else defaults.get("nprobe", DEFAULT_NPROBE))
        self.rerank = int(rerank if rerank is not None else defaults.get("rerank", 0))
        has_rows = self.index.doc_rows is not None
        self.exact_candidates = int(
            candidates if candidates is not None else defaults.get("candidates", DEFAULT_CANDIDATES if has_rows else 0)
        )
        if self.nprobe < 1:
            raise ValueError(f"nprobe must be >= 1, got {self.nprobe}")
        if self.exact_candidates < 0:
            raise ValueError(f"candidates must be >= 0, got {self.exact_candidates}")
        if self.exact_candidates and not has_rows:
            raise ValueError(
                f"{self.index.index_dir} has no {DOC_ROWS_NAME} (built before the exact small-tier stage); "
                "use candidates=0 or rebuild it"
            )
        if self.rerank < 0:
            raise ValueError(f"rerank must be >= 0, got {self.rerank}")
        if self.rerank and self.index.rerank_codes is None:
            raise ValueError(
                f"{self.index.index_dir} has no re-rank tier (built with --rerank-tier none); use rerank=0"
            )
        self.use_numba = use_numba
        self._local = threading.local()

    @property
    def docids(self) -> list[str]:
        return self.index.docids

    @property
    def num_docs(self) -> int:
        return self.index.num_docs

    @property
    def dimension(self) -> int:
        return self.index.dimension

    # -- query handling -----------------------------------------------------------------------------------------
    def _query_vectors(self, query: Any) -> np.ndarray:
        if isinstance(query, str):
            if self.query_encoder is None:
                raise ValueError("a text query needs a query_encoder; pass one or search with a [K, H] array")
            query = self.query_encoder.encode(query)
        array = np.asarray(query, dtype=np.float32)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2 or array.shape[0] < 1:
            raise ValueError(f"query vectors must be [K>=1, H] (or [H]); got shape {array.shape}")
        if array.shape[1] != self.dimension:
            raise IndexMismatchError(
                f"{self.index.index_dir}: query vectors have dimension {array.shape[1]}, the index {self.dimension} "
                "(query encoder and index come from different backbones)"
            )
        return array

    # -- the WARP steps -----------------------------------------------------------------------------------------
    def probe(self, projected: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cells [K, P], cell scores [K, P], imputed scores [K])`` for projected query vectors ``[K, d]``."""
        return _probe(projected @ self.index.codec.centroids.T, nprobe)

    def _warp(self, projected: np.ndarray, centroid_scores: np.ndarray, tables: np.ndarray, nprobe: int):
        cells, cell_scores, impute = _probe(centroid_scores, nprobe)
        index = self.index
        return warp_kernel.probe_maxsim(
            index.codes,
            index.doc_numbers,
            index.cell_offsets,
            cells,
            cell_scores,
            tables,
            impute,
            self._scratch(),
            self.use_numba,
        )

    def _scratch(self) -> np.ndarray:
        """This thread's ``document -> slot`` array for the kernel (4 bytes per document, made on first use)."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = warp_kernel.new_scratch(self.num_docs)
        return scratch

    def candidates(self, query_vectors: Any, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every document with a code in a probed cell and its WARP MaxSim (imputed): ``(doc numbers, scores)``."""
        return self._warp(*self._prepare(self._query_vectors(query_vectors)), int(nprobe or self.nprobe))

    def small_scores(self, query_vectors: Any, docs: np.ndarray) -> np.ndarray:
        """MaxSim of ``docs`` over *all* their small-tier codes (step 4 of the module docstring)."""
        _, centroid_scores, tables = self._prepare(self._query_vectors(query_vectors))
        return self._small_scores(centroid_scores, tables, docs)

    def _small_scores(self, centroid_scores: np.ndarray, tables: np.ndarray, docs: np.ndarray) -> np.ndarray:
        index = self.index
        if index.doc_rows is None:
            raise ValueError(f"{index.index_dir} has no {DOC_ROWS_NAME}")
        docs = np.asarray(docs, dtype=np.int64)
        if len(docs) == 0:
            return np.empty(0, np.float32)
        order = np.argsort(docs)  # ascending: doc_rows is read forward
        positions, local = _document_rows(index.offsets, docs[order])
        rows = np.asarray(index.doc_rows[positions], dtype=np.int64)
        cells = np.searchsorted(index.cell_offsets, rows, side="right") - 1
        sims = warp_kernel.score_rows(index.codes, rows, centroid_scores[:, cells], tables, self.use_numba)
        best = np.maximum(np.maximum.reduceat(sims, local, axis=1), 0).sum(axis=0)
        out = np.empty(len(docs), dtype=np.float32)
        out[order] = best
        return out

    def rank(
        self,
        query_vectors: Any,
        depth: int,
        *,
        nprobe: int | None = None,
        candidates: int | None = None,
        rerank: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``depth`` documents and their scores (steps 1-5; unset settings are the searcher's)."""
        query = self._query_vectors(query_vectors)
        nprobe = int(nprobe or self.nprobe)
        exact = self.exact_candidates if candidates is None else int(candidates)
        rerank = self.rerank if rerank is None else int(rerank)
        projected, centroid_scores, tables = self._prepare(query)
        docs, scores = self._warp(projected, centroid_scores, tables, nprobe)
        if exact:  # at least as many as the re-rank tier will read: `rerank` is how many it re-scores
            docs = docs[_top(scores, max(exact, rerank, depth))]
            scores = self._small_scores(centroid_scores, tables, docs)
        if rerank:
            docs = docs[_top(scores, max(rerank, depth))]
            scores = self.rerank_scores(query, docs)
        keep = _top(scores, depth)
        return docs[keep], scores[keep]

    def _prepare(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step 1: projected query vectors ``[K, d]``, their centroid scores ``[K, nlist]`` and byte tables."""
        codec = self.index.codec
        projected = codec.project(query)
        return projected, projected @ codec.centroids.T, codec.byte_tables(projected)

    def rank_settings(
        self,
        query_vectors: Any,
        depth: int,
        nprobe: int,
        candidates: Sequence[int],
        reranks: Sequence[int] = (),
    ) -> SettingsRanking:
        """What :meth:`rank` returns (documents only) for several settings at one ``nprobe``, at the cost of one.

        Settings: ``(c, 0)`` for every ``c`` in ``candidates``, and ``(max(candidates), r)`` for every ``r`` in
        ``reranks`` (whose exact stage keeps at least ``r`` candidates, as :meth:`rank`'s does). Why one pass serves
        them all: each setting keeps a prefix of the same ordering (the best
        ``c`` WARP candidates, then the best ``r`` of their exact small-tier scores), so the build-time tuning
        (:func:`..indexing.compress_warp.tune_search`) scores the largest setting once and cuts it. Equal to
        :meth:`rank` up to the order of tied scores.
        """
        query = self._query_vectors(query_vectors)
        projected, centroid_scores, tables = self._prepare(query)
        cells, _, _ = _probe(centroid_scores, int(nprobe))
        probed_codes = int((self.index.cell_offsets[cells + 1] - self.index.cell_offsets[cells]).sum())
        docs, scores = self._warp(projected, centroid_scores, tables, int(nprobe))
        rankings: dict[tuple[int, int], np.ndarray] = {}
        most = max(candidates)
        ordered = _ordered_top(scores, max(most, *reranks, depth))
        pool = docs[ordered]
        # no exact stage: WARP's imputed scores are final (and choose what the re-rank tier reads)
        exact = self._small_scores(centroid_scores, tables, pool) if most else scores[ordered]
        for count in candidates:
            kept = max(count, depth)
            rankings[(int(count), 0)] = pool[:kept][_top(exact[:kept], depth)] if count else docs[_top(scores, depth)]
        if reranks:
            chosen = {r: _top(exact[: max(most, r, depth)], max(r, depth)) for r in reranks}  # positions in pool
            needed = np.unique(np.concatenate(list(chosen.values())))
            full = np.zeros(len(pool), dtype=np.float32)
            full[needed] = self.rerank_scores(query, pool[needed])
            for rerank, positions in chosen.items():
                rankings[(int(most), int(rerank))] = pool[positions[_top(full[positions], depth)]]
        return SettingsRanking(rankings, probed_codes, len(docs))

    def rerank_scores(self, query_vectors: Any, docs: np.ndarray) -> np.ndarray:
        """MaxSim of ``docs`` (doc numbers) from the re-rank tier (SQ8 or split), read for these documents only."""
        query = self._query_vectors(query_vectors)
        if self.index.rerank_codes is None:
            raise ValueError(f"{self.index.index_dir} has no re-rank tier")
        codec = self.index.codec
        self.index.prefetch_rerank(docs)
        weights, bias = codec.rerank_affine(query)
        return warp_kernel.affine_uint8_maxsim(
            self.index.rerank_codes,
            self.index.offsets,
            docs,
            weights,
            bias,
            self.use_numba,
            whole=codec.rerank_whole_bytes,
            bits=codec.rerank_bits,
        )

    def search_vectors(self, query_vectors: Any, k: int = 10) -> list[SearchResult]:
        """Top ``k`` documents for one query given as vectors ``[K, H]``."""
        with one_blas_thread():
            docs, scores = self.rank(query_vectors, k)
        return sort_results(SearchResult(self.docids[d], float(s)) for d, s in zip(docs, scores))

    # -- Pyserini API -------------------------------------------------------------------------------------------
    def search(self, q: str | np.ndarray, k: int = 10) -> list[SearchResult]:
        """Top ``k`` for a text query (through the query encoder) or a ``[K, H]`` array."""
        return self.search_vectors(self._query_vectors(q), k)

    def batch_search(
        self, queries: Sequence[Any], q_ids: Sequence[str], k: int = 10, threads: int = 1
    ) -> dict[str, list[SearchResult]]:
        """``{qid: hits}``; queries run in ``threads`` threads (the kernel releases the GIL)."""
        if len(queries) != len(q_ids):
            raise ValueError(f"batch_search got {len(queries)} queries for {len(q_ids)} ids")
        vectors = [self._query_vectors(q) for q in queries]
        with one_blas_thread():
            if threads <= 1:
                return {qid: self.search_vectors(v, k) for qid, v in zip(q_ids, vectors)}
            with ThreadPoolExecutor(max_workers=int(threads)) as pool:
                hits = list(pool.map(lambda v: self.search_vectors(v, k), vectors))
        return dict(zip(q_ids, hits))


def _probe(scores: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WARP_SELECT from centroid scores ``[K, nlist]``: best cells, their scores, the imputed score (step 2)."""
    nlist = scores.shape[1]
    if nprobe >= nlist:
        order = np.argsort(-scores, axis=1)
        return order, np.take_along_axis(scores, order, 1), np.zeros(len(scores), np.float32)
    top = np.argpartition(-scores, nprobe, axis=1)[:, : nprobe + 1]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)
    top_scores = np.take_along_axis(scores, top, 1)
    return top[:, :nprobe], top_scores[:, :nprobe], top_scores[:, nprobe]


def _document_rows(offsets: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Document-order rows of ``docs`` (concatenated) and where each document starts among them."""
    starts, ends = offsets[docs], offsets[docs + 1]
    lengths = ends - starts
    local = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    rows = np.repeat(starts - local, lengths) + np.arange(int(lengths.sum()))
    return rows, local


def _ordered_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first (ties: lower index first)."""
    chosen = _top(scores, k)
    return chosen[np.lexsort((chosen, -scores[chosen]))]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores (any order)."""
    if k >= len(scores):
        return np.arange(len(scores))
    return np.argpartition(-scores, k)[:k]

"""Pure numpy scoring: clamped MaxSim, exhaustive dense and impact scores, deterministic top-k.

Why a module of its own: the same functions are the *reference* the tests compare the indexes against and
the *implementation* of the multi-vector searcher's exact re-scoring, so the two cannot drift (PyLate keeps
``colbert_scores`` apart from its retrievers for the same reason). Nothing here touches files, FAISS or the JVM.

MaxSim (docs/method.md §4, item 3) is ``score(q, d) = sum_i max(0, max_j q_i . d_j)``: ColBERT's MaxSim with each
per-query-vector maximum clamped at 0, so all-zero (truncated) vectors on either side contribute nothing and a
document without vectors scores 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from ..maxsim import maxsim  # the one single-pair MaxSim (a leaf module); re-exported here

__all__ = [
    "TopKAccumulator",
    "dense_scores",
    "docid_tie_ranks",
    "impact_scores",
    "iter_doc_chunks",
    "masked_means",
    "maxsim",
    "maxsim_scores",
    "select_top_k",
]


def maxsim_scores(
    query_matrix: np.ndarray,
    query_offsets: np.ndarray,
    doc_rows: np.ndarray,
    doc_offsets: np.ndarray,
) -> np.ndarray:
    """Clamped MaxSim of several queries against several documents stored as concatenated rows.

    Computed in float64 and returned as float32: the same (query, document) pair then gets the same score
    whichever batch or chunk it is computed in (float32 matrix products round differently with their shape),
    so ``search`` and ``batch_search`` agree exactly and ties stay ties.

    Parameters
    ----------
    query_matrix : np.ndarray
        ``[sum K_q, H]``: the vectors of all queries, concatenated.
    query_offsets : np.ndarray
        ``[Q + 1]`` int: query ``i`` owns rows ``query_offsets[i]:query_offsets[i+1]``.
    doc_rows : np.ndarray
        ``[R, H]``: the vectors of the documents, concatenated (any float dtype).
    doc_offsets : np.ndarray
        ``[n + 1]`` int, ``doc_offsets[0] == 0`` and ``doc_offsets[-1] == R``.

    Returns
    -------
    np.ndarray
        ``[n, Q]`` float32 scores.
    """
    doc_offsets = np.asarray(doc_offsets, dtype=np.int64)
    query_offsets = np.asarray(query_offsets, dtype=np.int64)
    n_docs, n_queries = len(doc_offsets) - 1, len(query_offsets) - 1
    scores = np.zeros((n_docs, n_queries), dtype=np.float64)
    if n_docs == 0 or n_queries == 0 or doc_rows.shape[0] == 0 or query_matrix.shape[0] == 0:
        return scores.astype(np.float32)
    sims = np.asarray(doc_rows, dtype=np.float64) @ np.asarray(query_matrix, dtype=np.float64).T  # [R, sum K_q]
    filled = np.diff(doc_offsets) > 0
    per_doc = np.zeros((n_docs, sims.shape[1]), dtype=np.float64)
    # Empty documents own no rows, so consecutive starts of the non-empty ones delimit exactly their rows.
    per_doc[filled] = np.maximum.reduceat(sims, doc_offsets[:-1][filled], axis=0)
    np.maximum(per_doc, 0.0, out=per_doc)
    has_vectors = np.diff(query_offsets) > 0
    if has_vectors.any():
        scores[:, has_vectors] = np.add.reduceat(per_doc, query_offsets[:-1][has_vectors], axis=1)
    return scores.astype(np.float32)


def masked_means(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-text mean of its non-zero vectors (docs/method.md §4 item 2, ``single_dense`` without re-normalising).

    Parameters
    ----------
    rows : np.ndarray
        ``[R, H]`` concatenated vectors.
    offsets : np.ndarray
        ``[n + 1]`` text boundaries, ``offsets[0] == 0``, ``offsets[-1] == R``.

    Returns
    -------
    np.ndarray
        ``[n, H]`` float32; all-zero for a text without non-zero vectors.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.float32)
    n = len(offsets) - 1
    means = np.zeros((n, rows.shape[1]), dtype=np.float32)
    filled = np.diff(offsets) > 0
    if rows.shape[0] == 0 or not filled.any():
        return means
    starts = offsets[:-1][filled]
    nonzero = np.any(rows != 0, axis=1).astype(np.float32)
    counts = np.maximum(np.add.reduceat(nonzero, starts), 1.0)
    means[filled] = np.add.reduceat(rows, starts, axis=0) / counts[:, None]
    return means


def dense_scores(query: np.ndarray, doc_matrix: np.ndarray) -> np.ndarray:
    """Inner products ``doc_matrix @ query`` (float64): the exhaustive reference for a flat IP index."""
    return np.asarray(doc_matrix, dtype=np.float64) @ np.asarray(query, dtype=np.float64)


def impact_scores(query: Mapping[str, int], docs: Sequence[Mapping[str, int]]) -> np.ndarray:
    """Exhaustive quantised dot products ``sum_t q[t] * d[t]`` (int64): what Lucene's ImpactSimilarity computes."""
    return np.array(
        [sum(int(weight) * int(doc.get(token, 0)) for token, weight in query.items()) for doc in docs],
        dtype=np.int64,
    )


def docid_tie_ranks(docids: Sequence[str]) -> np.ndarray:
    """Rank of each document's docid in ascending string order: an integer tie-break key for :func:`select_top_k`."""
    ids = np.asarray(list(docids), dtype=str)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    return ranks


def select_top_k(scores: np.ndarray, k: int, tie_ranks: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` best scores, ordered by ``(-score, tie_rank)``.

    Ties at the cut-off are resolved by ``tie_ranks`` too (smaller wins), so the chosen set, not only its
    order, is deterministic. ``tie_ranks`` defaults to the position.
    """
    scores = np.asarray(scores)
    n = scores.shape[0]
    ranks = np.arange(n) if tie_ranks is None else np.asarray(tie_ranks)
    k = max(int(k), 0)
    if k == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        chosen = np.arange(n)
    else:
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        better = np.flatnonzero(scores > kth)
        ties = np.flatnonzero(scores == kth)
        ties = ties[np.argsort(ranks[ties], kind="stable")[: k - len(better)]]
        chosen = np.concatenate([better, ties])
    order = np.lexsort((ranks[chosen], -scores[chosen]))
    return chosen[order].astype(np.int64)


class TopKAccumulator:
    """Running top-k of one query over document chunks, with the docid tie-break.

    Parameters
    ----------
    k : int
        Number of documents to keep.
    tie_ranks : np.ndarray
        ``[N]`` tie-break rank of every document (see :func:`docid_tie_ranks`).
    """

    def __init__(self, k: int, tie_ranks: np.ndarray) -> None:
        self.k = int(k)
        self.tie_ranks = tie_ranks
        self.doc_indices = np.zeros(0, dtype=np.int64)
        self.scores = np.zeros(0, dtype=np.float32)

    def update(self, doc_indices: np.ndarray, scores: np.ndarray) -> None:
        """Merge the scores of a chunk of documents (``doc_indices`` index the whole collection)."""
        indices = np.concatenate([self.doc_indices, np.asarray(doc_indices, dtype=np.int64)])
        values = np.concatenate([self.scores, np.asarray(scores, dtype=np.float32)])
        keep = select_top_k(values, self.k, self.tie_ranks[indices])
        self.doc_indices, self.scores = indices[keep], values[keep]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(doc_indices, scores)`` ordered by ``(-score, docid)``."""
        return self.doc_indices, self.scores


def iter_doc_chunks(offsets: np.ndarray, max_rows: int) -> Iterator[tuple[int, int]]:
    """Split documents into ``[start, end)`` ranges of at most ``max_rows`` vectors (at least one document each)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n_docs = len(offsets) - 1
    start = 0
    while start < n_docs:
        end = int(np.searchsorted(offsets, offsets[start] + max(int(max_rows), 1), side="right")) - 1
        end = min(max(end, start + 1), n_docs)
        yield start, end
        start = end

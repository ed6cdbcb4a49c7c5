"""Exact clamped MaxSim over a multi-vector storage: re-score candidates, or stream every document.

Why its own class: candidate generators (:mod:`.candidates`) decide *which* documents to look at, this decides
their scores and order, the same way for every generator, for the exhaustive reference ranking and for
re-ranking a compressed search from float vectors (a second :class:`MaxSimRescorer` over the float storage).
Results are ``(document indices, scores)`` ordered by ``(-score, docid)`` (the storage's ``tie_ranks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .scoring import TopKAccumulator, maxsim_scores, select_top_k

__all__ = ["EXACT_QUERY_GROUP_COLUMNS", "MaxSimRescorer"]

EXACT_QUERY_GROUP_COLUMNS = 1024
"""Exhaustive scoring: query vectors scored together against each chunk (more = fewer passes over the vectors)."""

Ranked = tuple[np.ndarray, np.ndarray]
"""``(document indices, scores)`` ordered by ``(-score, docid)``."""

NOTHING: Ranked = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


class MaxSimRescorer:
    """Clamped MaxSim, ``sum_i max(0, max_j q_i . d_j)``, of queries against the documents of ``storage``.

    Parameters
    ----------
    storage : MultiVectorIndex or CompressedMultiVectorIndex
        Has ``gather``, ``iter_chunks``, ``dimension``; queries must be in its space.
    tie_ranks : np.ndarray
        Docid order of every document (ties are broken by it); the storage's own by default.
    """

    def __init__(self, storage: Any, tie_ranks: np.ndarray | None = None) -> None:
        self.storage = storage
        self.tie_ranks = storage.tie_ranks if tie_ranks is None else tie_ranks

    def rescore(self, query: np.ndarray, docs: np.ndarray, k: int) -> Ranked:
        """The best ``k`` of the documents ``docs`` (sorted indices) for one ``[K_q, H]`` query."""
        if docs.size == 0 or len(query) == 0:
            return NOTHING
        rows, local = self.storage.gather(docs)
        scores = maxsim_scores(query, np.array([0, len(query)]), rows, local)[:, 0]
        top = select_top_k(scores, k, self.tie_ranks[docs])
        return docs[top], scores[top]

    def exhaustive(self, queries: Sequence[np.ndarray], k: int, chunk_bytes: int) -> list[Ranked]:
        """The best ``k`` of every document for each query, streaming the storage in chunks of ``chunk_bytes``.

        Queries are scored in groups of at most :data:`EXACT_QUERY_GROUP_COLUMNS` vectors, so the vectors are read
        once per group, not once per query.
        """
        results: list[Ranked] = [NOTHING for _ in queries]
        group: list[int] = []
        columns = 0
        for position, query in enumerate(queries):
            if len(query) == 0:
                continue
            if group and columns + len(query) > EXACT_QUERY_GROUP_COLUMNS:
                self._exhaustive_group(queries, group, k, chunk_bytes, results)
                group, columns = [], 0
            group.append(position)
            columns += len(query)
        if group:
            self._exhaustive_group(queries, group, k, chunk_bytes, results)
        return results

    def _exhaustive_group(
        self, queries: Sequence[np.ndarray], group: list[int], k: int, chunk_bytes: int, results: list[Ranked]
    ) -> None:
        matrix = np.concatenate([queries[i] for i in group])
        query_offsets = np.concatenate([[0], np.cumsum([len(queries[i]) for i in group])])
        # one chunk holds its rows (float32, then float64) and their float64 [rows, columns] similarities
        dimension = matrix.shape[1]
        max_rows = max(chunk_bytes // (12 * dimension + 16 * matrix.shape[0]), 1)
        tops = [TopKAccumulator(k, self.tie_ranks) for _ in group]
        for start, end, rows, local in self.storage.iter_chunks(max_rows):
            scores = maxsim_scores(matrix, query_offsets, rows, local)
            doc_indices = np.arange(start, end)
            for column, top in enumerate(tops):
                top.update(doc_indices, scores[:, column])
        for position, top in zip(group, tops):
            results[position] = top.result()

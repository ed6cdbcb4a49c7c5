"""Clamped MaxSim of one query and one document: a leaf module (numpy only) shared by every layer.

Why a leaf: the representation layer (:mod:`pyserini_diffretriever.representation.dense`) and the search layer
(:mod:`pyserini_diffretriever.search.scoring`) both need the one reference MaxSim; living here, neither layer
imports the other for it.

MaxSim (docs/method.md §4, item 3) is ``score(q, d) = sum_i max(0, max_j q_i . d_j)``: ColBERT's MaxSim with each
per-query-vector maximum clamped at 0, so all-zero (truncated) vectors on either side contribute nothing and a
document without vectors scores 0.

>>> import numpy as np
>>> maxsim(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.6, 0.8], [-1.0, 0.0]]))
1.4
"""

from __future__ import annotations

import numpy as np

__all__ = ["maxsim"]


def maxsim(query_vectors: np.ndarray, doc_vectors: np.ndarray) -> float:
    """Clamped MaxSim of one query and one document (float64): the package's one single-pair MaxSim.

    :mod:`pyserini_diffretriever.representation.dense` and :mod:`pyserini_diffretriever.search.scoring` re-export
    it; the batched :func:`~pyserini_diffretriever.search.scoring.maxsim_scores` computes the same value for many
    pairs.

    Parameters
    ----------
    query_vectors : np.ndarray
        ``[K_q, H]`` query vectors.
    doc_vectors : np.ndarray
        ``[K_d, H]`` document vectors; ``K_d`` may be 0.

    Returns
    -------
    float
        ``sum_i max(0, max_j q_i . d_j)``; 0.0 when either side has no vectors.

    Raises
    ------
    ValueError
        Either side is not a 2-D array, or the widths differ.
    """
    q = np.asarray(query_vectors, dtype=np.float64)
    d = np.asarray(doc_vectors, dtype=np.float64)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"maxsim needs [Kq, H] and [Kp, H] arrays, got {q.shape} and {d.shape}")
    if q.shape[0] == 0 or d.shape[0] == 0:
        return 0.0
    return float(np.maximum((q @ d.T).max(axis=1), 0.0).sum())

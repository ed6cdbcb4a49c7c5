"""The paper's hybrid fusion: guarded min-max normalisation per run, union, weighted sum (docs/method.md §6).

Why not Pyserini's ``HybridSearcher``: its fusion differs in three ways that change rankings (spec
pyserini.md §6): a document missing from one side gets that side's *minimum* score (here 0), its optional
normalisation centres to [-0.5, 0.5] and divides by ``max - min`` without a guard (ZeroDivisionError on one hit
or tied scores), and it iterates a ``set`` so ties come out in a different order per process. DiffRetriever's
``normalized_fusion`` is reproduced exactly:

1. per query, each run's top ``depth`` hits (by ``(-score, docid)``; a repeated docid keeps its best score);
2. ``s' = (s - min) / max(max - min, 1e-9)`` over those hits -- so a run whose hits all tie normalises to 0;
3. union of the two lists; a document missing from one list gets 0 for that side;
4. ``fused = alpha * a' + (1 - alpha) * b'`` (``alpha`` weighs run A, by convention the dense run);
5. sort by ``(-fused, docid)`` and keep ``k``.

:func:`fuse` builds either fusion behind one searcher shape (``search`` / ``batch_search``): this one, or
Pyserini's ``HybridSearcher`` (:class:`PyseriniHybridSearcher`) for runs comparable with
``python -m pyserini.search.hybrid``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .results import SearchResult, sort_results

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_DEPTH",
    "FUSIONS",
    "MIN_MAX_EPSILON",
    "MinMaxHybridSearcher",
    "PyseriniHybridSearcher",
    "fuse",
    "fuse_min_max",
    "fuse_min_max_hits",
    "normalize_min_max",
]

FUSIONS = ("minmax", "pyserini")
"""``minmax``: the paper's fusion (this module); ``pyserini``: Pyserini's ``HybridSearcher``."""

DEFAULT_ALPHA = {"minmax": 0.5, "pyserini": 0.1}
"""Default weight per fusion: minmax weighs the dense side (paper), pyserini the sparse side (its own default)."""

DEFAULT_DEPTH = 1000
"""Hits per side that are fused (paper: 1000)."""

MIN_MAX_EPSILON = 1e-9
"""Denominator floor of the min-max normalisation (the reference implementation's value)."""


def _check(alpha: float, depth: int, k: int) -> None:
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    for name, value in (("depth", depth), ("k", k)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def normalize_min_max(hits: Iterable[Any], depth: int = 1000) -> dict[str, float]:
    """Min-max normalised scores of the top ``depth`` hits of one query.

    Parameters
    ----------
    hits : iterable
        Objects with ``.docid`` and ``.score`` (any order; duplicates keep their best score).
    depth : int
        How many of the best hits take part.

    Returns
    -------
    dict
        ``{docid: normalised score in [0, 1]}``; all 0 when the scores are equal (``max - min < 1e-9``).
    """
    best: dict[str, float] = {}
    for hit in sort_results(hits):
        best.setdefault(str(hit.docid), float(hit.score))
        if len(best) == depth:
            break
    if not best:
        return {}
    low, high = min(best.values()), max(best.values())
    scale = max(high - low, MIN_MAX_EPSILON)
    return {docid: (score - low) / scale for docid, score in best.items()}


def fuse_min_max_hits(
    hits_a: Iterable[Any], hits_b: Iterable[Any], alpha: float = 0.5, depth: int = 1000, k: int = 1000
) -> list[SearchResult]:
    """Fuse the hits of one query from two runs (module docstring).

    Parameters
    ----------
    hits_a, hits_b : iterable
        Hits with ``.docid``/``.score`` from run A (weight ``alpha``) and run B (weight ``1 - alpha``).
    alpha : float
        Weight of run A.
    depth : int
        Hits of each run that are normalised and fused.
    k : int
        Fused hits returned.

    Returns
    -------
    list of SearchResult
        At most ``k`` hits ordered by ``(-score, docid)``.
    """
    _check(alpha, depth, k)
    norm_a, norm_b = normalize_min_max(hits_a, depth), normalize_min_max(hits_b, depth)
    fused = [
        SearchResult(docid, alpha * norm_a.get(docid, 0.0) + (1.0 - alpha) * norm_b.get(docid, 0.0))
        for docid in norm_a.keys() | norm_b.keys()
    ]
    return sort_results(fused, k)


def fuse_min_max(
    run_a: Mapping[str, Sequence[Any]],
    run_b: Mapping[str, Sequence[Any]],
    alpha: float = 0.5,
    depth: int = 1000,
    k: int = 1000,
) -> dict[str, list[SearchResult]]:
    """Fuse two runs query by query (module docstring).

    Parameters
    ----------
    run_a, run_b : mapping
        ``{qid: hits}`` (hits with ``.docid``/``.score``), e.g. from ``batch_search`` or
        :func:`pyserini_diffretriever.search.runs.read_run`. A query present in one run only keeps that
        run's normalised scores, weighted.
    alpha : float
        Weight of run A (by convention the dense or multi-vector run).
    depth : int
        Hits of each run (per query) that are normalised and fused.
    k : int
        Fused hits kept per query.

    Returns
    -------
    dict
        ``{qid: [SearchResult, ...]}``: run A's queries in its order, then run B's other queries.
    """
    _check(alpha, depth, k)
    qids = list(run_a) + [qid for qid in run_b if qid not in run_a]
    return {qid: fuse_min_max_hits(run_a.get(qid, ()), run_b.get(qid, ()), alpha, depth, k) for qid in qids}


class MinMaxHybridSearcher:
    """Pyserini ``HybridSearcher``-shaped searcher with the paper's fusion.

    Parameters
    ----------
    dense_searcher : object
        Run A: anything with ``search(q, k)`` / ``batch_search(queries, q_ids, k, threads)``, e.g. Pyserini's
        ``FaissSearcher`` or :class:`~pyserini_diffretriever.search.MultiVectorSearcher`.
    sparse_searcher : object
        Run B, e.g. Pyserini's ``LuceneImpactSearcher``.
    alpha : float
        Weight of the dense side (paper: 0.5).
    depth : int
        Hits retrieved from each side and fused (paper: 1000).
    """

    def __init__(self, dense_searcher: Any, sparse_searcher: Any, alpha: float = 0.5, depth: int = 1000) -> None:
        _check(alpha, depth, 1)
        self.dense_searcher = dense_searcher
        self.sparse_searcher = sparse_searcher
        self.alpha = float(alpha)
        self.depth = int(depth)

    def search(self, query: str, k: int = 10) -> list[SearchResult]:
        """Search both sides with ``depth`` hits each and return the top ``k`` fused hits."""
        dense = self.dense_searcher.search(query, self.depth)
        sparse = self.sparse_searcher.search(query, self.depth)
        return fuse_min_max_hits(dense, sparse, self.alpha, self.depth, k)

    def batch_search(
        self, queries: Sequence[str], q_ids: Sequence[str], k: int = 10, threads: int = 1
    ) -> dict[str, list[SearchResult]]:
        """Batch version of :meth:`search`: ``{qid: fused hits}`` in the order of ``q_ids``."""
        ids = [str(qid) for qid in q_ids]
        dense = self.dense_searcher.batch_search(list(queries), ids, self.depth, threads)
        sparse = self.sparse_searcher.batch_search(list(queries), ids, self.depth, threads)
        return {
            qid: fuse_min_max_hits(dense.get(qid, ()), sparse.get(qid, ()), self.alpha, self.depth, k) for qid in ids
        }


class PyseriniHybridSearcher:
    """Pyserini's ``HybridSearcher`` behind the ``search(q, k)`` / ``batch_search(queries, q_ids, k, threads)``
    shape, with its fusion options fixed at construction (``k0`` = ``depth``; ``alpha`` weighs the sparse side
    unless ``weight_on_dense``)."""

    def __init__(
        self,
        dense_searcher: Any,
        sparse_searcher: Any,
        alpha: float = DEFAULT_ALPHA["pyserini"],
        depth: int = DEFAULT_DEPTH,
        normalization: bool = False,
        weight_on_dense: bool = False,
    ) -> None:
        from pyserini.search.hybrid import HybridSearcher

        _check(0.0, depth, 1)
        self.dense_searcher, self.sparse_searcher = dense_searcher, sparse_searcher
        self.searcher = HybridSearcher(dense_searcher, sparse_searcher)
        self.options = {
            "k0": int(depth),
            "alpha": float(alpha),
            "normalization": normalization,
            "weight_on_dense": weight_on_dense,
        }

    def search(self, query: str, k: int = 10) -> list[Any]:
        """Pyserini's fused hits of one query."""
        return self.searcher.search(query, k=k, **self.options)

    def batch_search(
        self, queries: Sequence[str], q_ids: Sequence[str], k: int = 10, threads: int = 1
    ) -> dict[str, list[Any]]:
        """Pyserini's fused hits of many queries: ``{qid: hits}``."""
        return self.searcher.batch_search(list(queries), [str(q) for q in q_ids], k=k, threads=threads, **self.options)


def fuse(
    dense_searcher: Any,
    sparse_searcher: Any,
    fusion: str = "minmax",
    alpha: float | None = None,
    depth: int = DEFAULT_DEPTH,
    normalization: bool = False,
    weight_on_dense: bool = False,
) -> Any:
    """The hybrid searcher of two searchers (run A, run B) with the named fusion.

    Parameters
    ----------
    fusion : {'minmax', 'pyserini'}
        See :data:`FUSIONS`.
    alpha : float, optional
        Default :data:`DEFAULT_ALPHA` of the fusion.
    normalization, weight_on_dense : bool
        Pyserini fusion only (its options of the same names).
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion {fusion!r} is not one of {', '.join(FUSIONS)}")
    alpha = DEFAULT_ALPHA[fusion] if alpha is None else alpha
    if fusion == "minmax":
        if normalization or weight_on_dense:
            raise ValueError("normalization and weight_on_dense are options of the pyserini fusion, not minmax")
        return MinMaxHybridSearcher(dense_searcher, sparse_searcher, alpha=alpha, depth=depth)
    return PyseriniHybridSearcher(dense_searcher, sparse_searcher, alpha, depth, normalization, weight_on_dense)

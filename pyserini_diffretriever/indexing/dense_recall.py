"""Recall@k of an approximate dense index, measured while it is built (``index faiss`` records it).

Why: an ANN codec's recall depends on the spectrum of the vectors, not only on the codec. At dimension 3584
the default ``IVF,RaBitQ`` finds 0.79 of the exact top 100 on one synthetic collection and 0.75 on a flatter
one, where HNSW over floats finds 0.998 (issue 17). Nothing else tells a user which case they are in, so the
builder measures it:

1. **Pseudo-queries**: ``count`` collection vectors (seeded rows), read before the add pass.
2. **Exact top-(k+1)** of each by brute force over *every* float vector, accumulated chunk by chunk
   (:class:`ExactTopK`) during the add pass, which reads them anyway: no extra read of the collection, and no
   document sample whose recall would have to be extrapolated to the full collection.
3. **The built index searched** with the search parameters it is written with (``nprobe`` / ``efSearch`` /
   ``k_factor``). Each pseudo-query's own vector is left out of both lists (leave-one-out): it would be a free
   hit in the ANN results and is not a neighbour a user would look for.
4. **Alternatives** when the estimate is below the wanted recall, measured on the same pseudo-queries: more
   probes (IVF) or a larger ``efSearch`` (HNSW), and how much of the exact top-k a re-ranking stage over
   ``REFINE_FACTOR x k`` candidates could at best recover (``Refine(...)``), so the warning names an option
   that was measured to reach it, or says that none of the cheap ones does.

``benchmarks/b5_dense.py`` checks that the estimate tracks the recall of real held-out queries of the generator
(``dense_recall_estimate_abs_error``, and ``..._flat`` on the flat-tail geometry; target <= 0.03).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_RECALL_QUERIES = 200
"""Pseudo-queries per estimate: the standard error of a mean recall@100 over 200 queries is ~0.01-0.02."""

DEFAULT_MIN_RECALL = 0.95
"""Below this estimated recall@k the builder warns (``--min-recall``)."""

RECALL_DEPTH = 100
"""The k of the recorded recall@k (the usual first-stage depth)."""

REFINE_FACTOR = 4
"""Candidates per wanted hit that a suggested re-ranking stage would re-score (FAISS ``k_factor``)."""

FLOAT_FACTORY = "HNSW32"
"""Suggested when no cheap option reaches the wanted recall: HNSW over the float vectors."""


class ExactTopK:
    """Running exact inner-product top ``k`` of fixed queries over vectors added chunk by chunk, in row order."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.k = int(k)
        self.scores = np.empty((len(self.queries), 0), dtype=np.float32)
        self.ids = np.empty((len(self.queries), 0), dtype=np.int64)
        self.seen = 0

    def add(self, chunk: np.ndarray) -> None:
        """Score the next ``[n, d]`` rows (ids ``seen .. seen + n - 1``) and keep each query's best ``k``."""
        scores = np.concatenate([self.scores, self.queries @ np.asarray(chunk, dtype=np.float32).T], axis=1)
        ids = np.concatenate(
            [self.ids, np.broadcast_to(np.arange(self.seen, self.seen + len(chunk)), (len(self.queries), len(chunk)))],
            axis=1,
        )
        self.seen += len(chunk)
        if scores.shape[1] > self.k:
            keep = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            scores, ids = np.take_along_axis(scores, keep, axis=1), np.take_along_axis(ids, keep, axis=1)
        self.scores, self.ids = scores, ids

    def top(self) -> np.ndarray:
        """``[queries, <= k]`` row ids, best first (ties by row id)."""
        order = np.lexsort((self.ids, -self.scores), axis=1) if self.ids.size else np.empty_like(self.ids)
        return np.take_along_axis(self.ids, order, axis=1)


def leave_one_out(ids: np.ndarray, rows: np.ndarray, k: int) -> list[np.ndarray]:
    """Each query's first ``k`` ids other than its own row (and other than FAISS's -1 padding)."""
    return [found[(found != row) & (found >= 0)][:k] for found, row in zip(ids, rows)]


def recall_per_query(found: list[np.ndarray], exact: list[np.ndarray]) -> np.ndarray:
    """Share of each query's exact ids among its found ids."""
    return np.array([len(np.intersect1d(f, e)) / max(len(e), 1) for f, e in zip(found, exact)])


@dataclass
class PseudoQueries:
    """Collection rows used as queries and their exact leave-one-out top ``k`` (see the module docstring)."""

    rows: np.ndarray
    vectors: np.ndarray
    exact: list[np.ndarray]
    k: int

    def recall(self, index: Any, depth: int | None = None) -> np.ndarray:
        """Per-query recall@k of ``index`` as it is configured; ``depth`` > k counts the exact top-k among the
        first ``depth`` results (the best a re-ranking stage over them could do)."""
        depth = depth or self.k
        _, ids = index.search(self.vectors, depth + 1)
        return recall_per_query(leave_one_out(ids, self.rows, depth), self.exact)


def pseudo_queries(vectors: np.ndarray, rows: np.ndarray, exact: ExactTopK) -> PseudoQueries:
    """Bundle the rows, their vectors and the exact top-(k+1) accumulated over the whole collection."""
    k = exact.k - 1
    return PseudoQueries(np.asarray(rows), vectors, leave_one_out(exact.top(), rows, k), k)


def _faiss_parts(index: Any) -> tuple[Any, Any, Any]:
    """``(IVF part, HNSW part, Refine wrapper)`` of ``index``, each None where absent."""
    import faiss

    from .faiss_dense import _hnsw_of

    outer = faiss.downcast_index(index)
    refine = outer if isinstance(outer, faiss.IndexRefine) else None
    return faiss.try_extract_index_ivf(index), _hnsw_of(index), refine


def alternatives(index: Any, queries: PseudoQueries, search: Mapping[str, int], wanted: float) -> dict[str, float]:
    """Recall@k of cheap alternatives on the same pseudo-queries (labelled by the option that gives them).

    IVF: ``nprobe`` doubled up to 16x (or every list); HNSW: ``efSearch`` doubled up to 8x; both stop at the
    first value that reaches ``wanted``. Then the exact top-k share among ``REFINE_FACTOR`` x more results at
    the widest ``nprobe`` tried, the bound of a re-ranking stage there (at the chosen ``nprobe`` the coarse
    quantiser, not the code, may be what loses the neighbours). The index's search parameters are restored.
    """
    ivf, hnsw, refine = _faiss_parts(index)
    measured: dict[str, float] = {}
    widest = ""
    if ivf is not None:
        chosen = ivf.nprobe
        probes = chosen * 2
        while probes <= min(16 * chosen, 2 * ivf.nlist):
            ivf.nprobe = min(probes, ivf.nlist)
            measured[f"--nprobe {ivf.nprobe}"] = float(queries.recall(index).mean())
            if measured[f"--nprobe {ivf.nprobe}"] >= wanted or ivf.nprobe == ivf.nlist:
                break
            probes *= 2
        widest = f" at --nprobe {ivf.nprobe}"
    if hnsw is not None:
        chosen_ef = hnsw.efSearch
        for ef in (2 * chosen_ef, 4 * chosen_ef, 8 * chosen_ef):
            hnsw.efSearch = ef
            measured[f"--ef-search {ef}"] = float(queries.recall(index).mean())
            if measured[f"--ef-search {ef}"] >= wanted:
                break
        hnsw.efSearch = chosen_ef
    factor = int(search.get("k_factor", 1)) * REFINE_FACTOR
    label = f"re-rank {factor} x {queries.k} candidates exactly{widest} (upper bound)"
    base = refine.base_index if refine is not None else index
    measured[label] = float(queries.recall(base, factor * queries.k).mean())
    if ivf is not None:
        ivf.nprobe = chosen
    return measured


def advice(spec: str, k: int, estimate: float, wanted: float, measured: Mapping[str, float]) -> str:
    """The warning text: what was measured, and the option that reaches ``wanted`` (or that none did)."""
    parts = [f"estimated recall@{k} of {spec} is {estimate:.3f}, below --min-recall {wanted:.2f}"]
    if measured:
        parts.append(
            "measured on the same pseudo-queries: " + "; ".join(f"{k} -> {v:.3f}" for k, v in measured.items())
        )
    enough = [option for option, value in measured.items() if value >= wanted and option.startswith("--")]
    rerank = [option for option, value in measured.items() if value >= wanted and option.startswith("re-rank")]
    if enough:
        parts.append(f"use {enough[0]}")
    elif rerank:
        probes = rerank[0].split(" at ")[1].split(" (")[0] if " at --nprobe" in rerank[0] else ""
        parts.append(
            "a re-ranking stage can reach it: add Refine(SQ8) to the factory, e.g. --factory "
            f"'IVF{{nlist}},RaBitQ,Refine(SQ8)' {probes}".rstrip()
            + " (8-bit codes of every vector re-score the candidates)"
        )
    else:
        parts.append(
            f"the codec limits it: use --factory {FLOAT_FACTORY} (HNSW over the float vectors, 4 bytes per "
            "dimension plus links) or a finer code"
        )
    return "; ".join(parts)


def recall_record(
    index: Any, spec: str, queries: PseudoQueries, search: Mapping[str, int], wanted: float
) -> dict[str, Any]:
    """The manifest's ``recall_estimate`` record (module docstring), with alternatives and advice when low."""
    per_query = queries.recall(index)
    estimate = float(per_query.mean())
    record: dict[str, Any] = {
        f"recall_at_{queries.k}": round(estimate, 4),
        f"min_query_recall_at_{queries.k}": round(float(per_query.min()), 4),
        "queries": len(per_query),
        "search": dict(search),
        "method": (
            "pseudo-queries: seeded collection vectors, each left out of its own results; exact top-k by "
            "brute force over every float vector of the collection"
        ),
        "min_recall": wanted,
    }
    if estimate < wanted:
        measured = alternatives(index, queries, search, wanted)
        record["alternatives"] = {option: round(value, 4) for option, value in measured.items()}
        record["advice"] = advice(spec, queries.k, estimate, wanted, measured)
    return record

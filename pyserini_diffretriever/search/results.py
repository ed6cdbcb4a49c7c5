"""The search result record and the one ordering every searcher, fusion and run writer uses.

Why: Pyserini's ``HybridSearcher`` and ``output_writer`` only read ``.docid`` and ``.score``; a frozen
dataclass with exactly those two fields lets our results flow through Pyserini unchanged, and a single
``(-score, docid)`` order (Pyserini's ``tie_breaker``) makes runs identical from one process to the next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol


class Hit(Protocol):
    """Anything with a ``docid`` and a ``score``: ours, ``DenseSearchResult``, Anserini's ``JScoredDoc``."""

    docid: str
    score: float


@dataclass(frozen=True)
class SearchResult:
    """One retrieved document.

    Attributes
    ----------
    docid : str
        External document id (as in the index's ``docid`` file / Lucene ``id`` field).
    score : float
        Retrieval score (larger is better).
    """

    docid: str
    score: float


def result_order_key(hit: Hit) -> tuple[float, str]:
    """Sort key for the deterministic order: score descending, then docid ascending."""
    return (-float(hit.score), str(hit.docid))


def sort_results(hits: Iterable[Any], k: int | None = None) -> list[Any]:
    """Return ``hits`` sorted by ``(-score, docid)`` (Pyserini's ``tie_breaker``), cut to ``k`` if given."""
    ordered = sorted(hits, key=result_order_key)
    return ordered if k is None else ordered[: max(int(k), 0)]


def as_search_results(hits: Iterable[Any]) -> list[SearchResult]:
    """Copy any ``.docid``/``.score`` hits (e.g. Java ``JScoredDoc``) into plain :class:`SearchResult`."""
    return [SearchResult(str(hit.docid), float(hit.score)) for hit in hits]

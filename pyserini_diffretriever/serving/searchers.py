"""Open the index aliases of a server config as searchers that share models and micro-batchers.

Why: Pyserini's server keeps one searcher per alias and calls ``searcher.search(query, hits)`` from many
threads. :class:`ServingRuntime` opens each alias with :func:`~pyserini_diffretriever.search.factory.open_searchers`
(the query encoder comes from the folder's manifest, and two folders are fused, as for the search CLI), loads
each backbone (+ adapter) once on ``device``/``dtype`` for all aliases, routes every query encoder through the
model's :class:`~.batching.MicroBatcher`, and wraps the result in a :class:`ServedSearcher`.

Thread safety comes from the kinds table (:mod:`pyserini_diffretriever.search.kinds`): a searcher whose kind is
not thread safe runs one search at a time behind a lock -- after the query was encoded, so the lock never keeps
queries out of a shared forward pass. Kinds searched through pyjnius (``jvm``: Pyserini's Lucene searchers) share
one process-wide lock, :data:`JVM_LOCK`, with the server's document fetches: pyjnius can send one thread's Java
call to another thread's object of the same class (kivy/pyjnius#287), so a lock per searcher is not enough.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..search.fusion import DEFAULT_DEPTH
from ..search.index_format import IndexFormatError
from ..search.kinds import REPRESENTATIONS, IndexKind
from .batching import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS, BatchedQueryEncoder, MicroBatcher, encode_ahead

logger = logging.getLogger(__name__)

__all__ = ["HYBRID_TYPE", "REPRESENTATION_OF_TYPE", "HybridSpec", "ServedSearcher", "ServingOptions", "ServingRuntime"]

TYPE_PREFIX = "diffretriever_"
REPRESENTATION_OF_TYPE = {f"{TYPE_PREFIX}{representation}": representation for representation in REPRESENTATIONS}
"""Index types of single folders and the query representation (hence the manifest kinds) each accepts."""

HYBRID_TYPE = "diffretriever_hybrid"

JVM_LOCK = threading.Lock()
"""Held by every served search of a ``jvm`` kind and by the backend's document fetches (module docstring). Java
work per search is small next to query encoding, which runs outside it."""


@dataclass(frozen=True)
class ServingOptions:
    """Where the models run and how queries are batched."""

    device: str = "cpu"
    dtype: str | None = None
    window_ms: float = DEFAULT_WINDOW_MS
    max_batch: int = DEFAULT_MAX_BATCH


@dataclass(frozen=True)
class HybridSpec:
    """A hybrid alias: two index folders fused like ``python -m pyserini_diffretriever.search`` does."""

    paths: tuple[Path, Path]
    fusion: str = "minmax"
    alpha: float | None = None
    depth: int = DEFAULT_DEPTH


class _Locked:
    """One search at a time for a searcher that is not known to be thread-safe (``lock``: shared with others)."""

    def __init__(self, searcher: Any, lock: threading.Lock | None = None) -> None:
        self.searcher = searcher
        self._lock = lock if lock is not None else threading.Lock()

    def search(self, query: str, k: int = 10) -> list[Any]:
        with self._lock:
            return self.searcher.search(query, k)


class ServedSearcher:
    """What Pyserini's backend holds for one alias: ``search(q, k)`` encodes ``q`` once through the batcher(s),
    then searches.

    Attributes
    ----------
    searcher : object
        The (possibly fused and locked) searcher.
    encoders : list of BatchedQueryEncoder
        Its query encoders (two for a hybrid).
    kinds : tuple of str
        The manifest kinds it searches.
    """

    def __init__(self, searcher: Any, encoders: Sequence[BatchedQueryEncoder], kinds: Sequence[str]) -> None:
        self.searcher = searcher
        self.encoders = list(encoders)
        self.kinds = tuple(kinds)

    def search(self, q: str, k: int = 10) -> list[Any]:
        with encode_ahead(self.encoders, q):
            return self.searcher.search(q, k)

    def close(self) -> None:
        close = getattr(self.searcher, "close", None)
        if callable(close):
            close()


class ServingRuntime:
    """Opens aliases; one model per backbone (+ adapter) and one :class:`MicroBatcher` per model.

    Parameters
    ----------
    options : ServingOptions
        Device, dtype and batching window.
    hybrids : mapping, optional
        ``{alias: HybridSpec}`` for the hybrid aliases of the config.
    """

    def __init__(self, options: ServingOptions = ServingOptions(), hybrids: dict[str, HybridSpec] | None = None):
        self.options = options
        self.hybrids = dict(hybrids or {})
        self._models: dict[tuple[str, str | None], Any] = {}
        self._batchers: dict[int, MicroBatcher] = {}
        self._lock = threading.RLock()

    @property
    def batchers(self) -> list[MicroBatcher]:
        return list(self._batchers.values())

    def open(self, index_type: str, path: str | os.PathLike, *, alias: str, encoder: str | None = None) -> Any:
        """The :class:`ServedSearcher` for one alias of type ``index_type`` (a key of
        :data:`REPRESENTATION_OF_TYPE` or :data:`HYBRID_TYPE`); ``encoder`` overrides the manifest's checkpoint."""
        from ..search.factory import open_searchers

        with self._lock:
            if index_type == HYBRID_TYPE:
                spec = self.hybrids.get(alias)
                if spec is None:
                    raise IndexFormatError(
                        f"index alias {alias!r}: a {HYBRID_TYPE} alias needs 'with' (the second index)"
                    )
                indexes: list[Any] = list(spec.paths)
                fusion = {"fusion": spec.fusion, "alpha": spec.alpha, "depth": spec.depth}
            else:
                indexes, fusion = [(REPRESENTATION_OF_TYPE[index_type], Path(path))], {}
            encoders: list[BatchedQueryEncoder] = []
            kinds: list[str] = []

            def serve(searcher: Any, kind: IndexKind, folder: Path) -> Any:
                encoders.append(self._batched(searcher))
                kinds.append(kind.name)
                logger.info("alias %s: %s index %s (%s)", alias, kind.name, folder, type(searcher).__name__)
                if kind.thread_safe:
                    return searcher
                return _Locked(searcher, JVM_LOCK if kind.jvm else None)

            try:
                searcher = open_searchers(
                    indexes,
                    encoder=encoder,
                    models=self._models,
                    prepare=serve,
                    device=self.options.device,
                    dtype=self.options.dtype,
                    **fusion,
                )
            except IndexFormatError as error:
                raise IndexFormatError(f"index alias {alias!r}: {error}") from error
            return ServedSearcher(searcher, encoders, kinds)

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        self._batchers.clear()
        self._models.clear()

    def _batched(self, searcher: Any) -> BatchedQueryEncoder:
        """Route the searcher's query encoder through its model's micro-batcher (one batcher per model)."""
        model = searcher.query_encoder.model
        batcher = self._batchers.get(id(model))
        if batcher is None:
            batcher = MicroBatcher(model, window_ms=self.options.window_ms, max_batch=self.options.max_batch)
            self._batchers[id(model)] = batcher
        batched = BatchedQueryEncoder(searcher.query_encoder, batcher)
        searcher.query_encoder = batched
        return batched

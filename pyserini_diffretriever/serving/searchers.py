"""Open the index aliases of a server config as searchers that share models and micro-batchers.

Why: Pyserini's server keeps one searcher per alias and calls ``searcher.search(query, hits)`` from many
threads. :class:`ServingRuntime` opens each alias with :func:`~pyserini_diffretriever.search.factory.open_searcher`
(the query encoder comes from the folder's manifest, as for the search CLI), loads each backbone (+ adapter) once
on ``device``/``dtype`` for all aliases, routes every query encoder through the model's
:class:`~.batching.MicroBatcher`, and wraps the result in a :class:`ServedSearcher`.

Thread safety: FAISS and Lucene searchers answer concurrent searches (Pyserini's server relies on that);
this package's own searchers (multi-vector MaxSim with lazily built token index and means, Lucene dense) are
not audited for it and run one search at a time behind a lock -- after the query was encoded, so the lock
never keeps queries out of a shared forward pass.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..search.factory import MULTI_KINDS
from ..search.fusion import MinMaxHybridSearcher
from ..search.index_format import IndexFormatError, read_manifest
from .batching import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_MS, BatchedQueryEncoder, MicroBatcher, encode_ahead

logger = logging.getLogger(__name__)

__all__ = ["HybridSpec", "ServedSearcher", "ServingOptions", "ServingRuntime", "KINDS_OF_TYPE"]

KINDS_OF_TYPE: dict[str, tuple[str, ...]] = {
    "diffretriever_dense": ("dense", "dense-ann", "dense-lucene-index"),
    "diffretriever_multi": MULTI_KINDS,
    "diffretriever_impact": ("impact-index",),
}
"""Index types of single folders and the manifest kinds each accepts."""

HYBRID_TYPE = "diffretriever_hybrid"
FUSIONS = ("minmax", "pyserini")
DEFAULT_ALPHA = {"minmax": 0.5, "pyserini": 0.1}
FUSION_ORDER = ("dense", "multi", "impact")
"""Which side of a hybrid is ``dense_searcher`` (the first present), as in the search CLI."""


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
    depth: int = 1000


class _Locked:
    """One search at a time for a searcher that is not known to be thread-safe."""

    def __init__(self, searcher: Any) -> None:
        self.searcher = searcher
        self._lock = threading.Lock()

    def search(self, query: str, k: int = 10) -> list[Any]:
        with self._lock:
            return self.searcher.search(query, k)


class _PyseriniFusion:
    """Pyserini's ``HybridSearcher`` behind ``search(q, k)`` (``k0`` = depth, as the search CLI passes it)."""

    def __init__(self, dense: Any, sparse: Any, alpha: float, depth: int) -> None:
        from pyserini.search.hybrid import HybridSearcher

        self.searcher = HybridSearcher(dense, sparse)
        self.alpha, self.depth = alpha, depth

    def search(self, query: str, k: int = 10) -> list[Any]:
        return self.searcher.search(query, k0=self.depth, k=k, alpha=self.alpha)


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
        """The :class:`ServedSearcher` for one alias of type ``index_type`` (a key of :data:`KINDS_OF_TYPE` or
        :data:`HYBRID_TYPE`); ``encoder`` overrides the manifest's checkpoint location."""
        with self._lock:
            if index_type == HYBRID_TYPE:
                return self._open_hybrid(alias, encoder)
            searcher, batched = self._open_folder(Path(path), KINDS_OF_TYPE[index_type], alias, encoder)
            return ServedSearcher(searcher, [batched], [read_manifest(path)["kind"]])

    def close(self) -> None:
        for batcher in self._batchers.values():
            batcher.close()
        self._batchers.clear()
        self._models.clear()

    def _open_folder(
        self, folder: Path, kinds: Sequence[str], alias: str, encoder: str | None
    ) -> tuple[Any, BatchedQueryEncoder]:
        """Open one folder (its kind must be one of ``kinds``); the searcher's encoder goes through the batcher."""
        from ..search.factory import open_searcher

        manifest = read_manifest(folder)
        if manifest["kind"] not in kinds:
            raise IndexFormatError(
                f"index alias {alias!r}: {folder} holds a {manifest['kind']!r} index, expected one of {list(kinds)}"
            )
        settings = manifest.get("encoder", {})
        source = encoder or settings.get("backbone")
        key = (str(source), settings.get("adapter"))
        searcher = open_searcher(
            folder,
            model=self._models.get(key, source),
            device=self.options.device,
            dtype=self.options.dtype,
        )
        model = searcher.query_encoder.model
        self._models.setdefault(key, model)
        batcher = self._batchers.get(id(model))
        if batcher is None:
            batcher = MicroBatcher(model, window_ms=self.options.window_ms, max_batch=self.options.max_batch)
            self._batchers[id(model)] = batcher
        batched = BatchedQueryEncoder(searcher.query_encoder, batcher)
        searcher.query_encoder = batched
        logger.info("alias %s: %s index %s (%s)", alias, manifest["kind"], folder, type(searcher).__name__)
        if manifest["kind"] in ("dense", "dense-ann", "impact-index"):
            return searcher, batched  # FAISS / Lucene: concurrent searches are safe
        return _Locked(searcher), batched

    def _open_hybrid(self, alias: str, encoder: str | None) -> ServedSearcher:
        spec = self.hybrids.get(alias)
        if spec is None:
            raise IndexFormatError(f"index alias {alias!r}: a {HYBRID_TYPE} alias needs 'with' (the second index)")
        sides = []
        for path in spec.paths:
            kind = read_manifest(path)["kind"]
            side = next((s for s in FUSION_ORDER if kind in _side_kinds(s)), None)
            if side is None:
                raise IndexFormatError(f"index alias {alias!r}: {path} holds a {kind!r} index, which cannot be fused")
            sides.append((FUSION_ORDER.index(side), side, path, kind))
        sides.sort(key=lambda s: s[0])
        if sides[0][1] == sides[1][1]:
            raise IndexFormatError(f"index alias {alias!r}: both indexes are {sides[0][1]} indexes; fuse two kinds")
        opened = [self._open_folder(path, _side_kinds(side), alias, encoder) for _, side, path, _ in sides]
        (first, first_encoder), (second, second_encoder) = opened
        alpha = DEFAULT_ALPHA[spec.fusion] if spec.alpha is None else spec.alpha
        if spec.fusion == "minmax":
            fused: Any = MinMaxHybridSearcher(first, second, alpha=alpha, depth=spec.depth)
        else:
            fused = _PyseriniFusion(first, second, alpha, spec.depth)
        return ServedSearcher(fused, [first_encoder, second_encoder], [kind for *_, kind in sides])


def _side_kinds(side: str) -> tuple[str, ...]:
    return KINDS_OF_TYPE[f"diffretriever_{side}"]

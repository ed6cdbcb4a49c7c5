"""Teach Pyserini's search server our index types, at run time, without touching its files.

Pyserini's server (``pyserini.server``) validates a config's ``index_type`` against the module-level dictionary
``pyserini.server.utils.INDEX_TYPE`` and opens a local alias with ``SEARCHER_FACTORIES[index_type]``, a
``(local constructor, prebuilt constructor, kwargs builder)`` triple. :func:`register_index_types` adds

============================  ==========================================================================
``diffretriever_dense``       folders of every kind with the ``dense`` representation in the kinds table
                              (:mod:`pyserini_diffretriever.search.kinds`): ``dense``, ``dense-ann``,
                              ``dense-lucene-index``
``diffretriever_multi``       ``multi`` representation: ``multi`` and ``multi-compressed`` folders (MaxSim)
``diffretriever_impact``      ``impact`` representation: Lucene ``impact-index`` folders
``diffretriever_hybrid``      ``path`` + ``with``: two of the above fused (``fusion``, ``alpha``, ``depth``)
============================  ==========================================================================

whose local constructor is :meth:`~.searchers.ServingRuntime.open`. A config alias of ours looks like::

    indexes:
      cran-hybrid:
        index_type: diffretriever_hybrid
        path: indexes/cran.multi       # folders written by this package; the query encoder comes from
        with: indexes/cran.impact      # each folder's manifest
        fusion: minmax                 # or pyserini (Pyserini's HybridSearcher); alpha and depth optional
        base_index: cran-docs          # optional: a tf alias whose Lucene index stores the documents

The extra keys (``with``, ``fusion``, ``alpha``, ``depth``) are ignored by Pyserini's parser and read here by
:func:`read_hybrid_specs`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from ..search.fusion import DEFAULT_ALPHA, DEFAULT_DEPTH, FUSIONS
from .searchers import HYBRID_TYPE, REPRESENTATION_OF_TYPE, HybridSpec, ServingRuntime

__all__ = ["INDEX_TYPES", "read_hybrid_specs", "register_index_types"]

INDEX_TYPES = (*REPRESENTATION_OF_TYPE, HYBRID_TYPE)


def register_index_types(runtime: ServingRuntime) -> None:
    """Add :data:`INDEX_TYPES` to Pyserini's server registries, opened by ``runtime`` (re-registering replaces)."""
    from pyserini.server.utils import INDEX_TYPE, SEARCHER_FACTORIES

    for index_type in INDEX_TYPES:
        INDEX_TYPE.setdefault(index_type, {})  # no prebuilt indexes of this type

        def local(path: str, *, alias: str, encoder: str | None, _type: str = index_type) -> Any:
            return runtime.open(_type, path, alias=alias, encoder=encoder)

        def prebuilt(name: str, **_: Any) -> Any:
            raise ValueError(f"{name}: DiffRetriever index types have no prebuilt indexes; configure a path")

        SEARCHER_FACTORIES[index_type] = (local, prebuilt, lambda cfg: {"alias": cfg.name, "encoder": cfg.encoder})


def read_hybrid_specs(config_path: str | Path) -> dict[str, HybridSpec]:
    """``{alias: HybridSpec}`` for the ``diffretriever_hybrid`` aliases of a server config.

    Raises
    ------
    ValueError
        Naming the alias: no ``with``, a missing folder, an unknown ``fusion``, ``alpha`` or ``depth`` out of range.
    """
    path = Path(config_path)
    with path.open(encoding="utf-8") as handle:
        payload = yaml.safe_load(handle) or {}
    indexes = payload.get("indexes") if isinstance(payload, dict) else None
    specs: dict[str, HybridSpec] = {}
    for alias, entry in (indexes or {}).items() if isinstance(indexes, dict) else ():
        if isinstance(entry, dict) and entry.get("index_type") == HYBRID_TYPE:
            specs[str(alias).strip()] = _hybrid_spec(str(alias).strip(), entry, path.resolve().parent)
    return specs


def _hybrid_spec(alias: str, entry: dict[str, Any], parent: Path) -> HybridSpec:
    def folder(key: str) -> Path:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f'Index alias "{alias}" ({HYBRID_TYPE}) needs "{key}": an index folder')
        resolved = Path(value) if Path(value).is_absolute() else (parent / value).resolve()
        if not resolved.is_dir():
            raise ValueError(f'Index alias "{alias}" has "{key}" pointing to missing path: {resolved}')
        return resolved

    fusion = entry.get("fusion", "minmax")
    if fusion not in FUSIONS:
        raise ValueError(f'Index alias "{alias}" has unknown "fusion" {fusion!r} (must be one of {list(FUSIONS)})')
    alpha = entry.get("alpha", DEFAULT_ALPHA[fusion])
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f'Index alias "{alias}" has invalid "alpha" {alpha!r} (must be a number)')
    if fusion == "minmax" and not 0.0 <= alpha <= 1.0:
        raise ValueError(f'Index alias "{alias}" has "alpha" {alpha} outside [0, 1] (minmax fusion)')
    depth = entry.get("depth", DEFAULT_DEPTH)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f'Index alias "{alias}" has invalid "depth" {depth!r} (must be a positive integer)')
    return HybridSpec(paths=(folder("path"), folder("with")), fusion=fusion, alpha=float(alpha), depth=depth)

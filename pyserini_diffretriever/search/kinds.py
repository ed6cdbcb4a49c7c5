"""One table of index kinds: what each manifest kind is, how it is opened, and what it accepts.

Why one table: the search CLI, the server and :func:`~.factory.open_searcher` each used to keep their own kind
lists, and they drifted (a compressed multi-vector folder was refused by the CLI's hybrids and its options were
dropped without a word). Every question about a kind is answered here, from its row:

======================  ==============  ===========  =====================================================  ======
kind                    representation  fusion side  search options                                         thread
                                                                                                            safe
======================  ==============  ===========  =====================================================  ======
``dense``               dense           dense        --                                                     yes
``dense-ann``           dense           dense        ``nprobe`` (IVF), ``ef_search`` (HNSW)                 yes
``dense-lucene-index``  dense           dense        ``ef_search``                                          no
``multi``               multi           dense        mode, candidates, nprobe, threads, sources, ...        no
``multi-compressed``    multi           dense        mode, candidates, nprobe, centroid_candidates, rerank  no
``multi-warp``          multi           dense        ``nprobe``, ``candidates``, ``rerank`` (tier depth)    yes
``impact-index``        impact          sparse       ``min_idf``                                            yes
======================  ==============  ===========  =====================================================  ======

- *representation*: the query encoder that searches it (``DiffRetrieverQueryEncoder(representation=...)``), and
  the CLI flag (``--dense-index``, ``--multi-index``, ``--impact-index``) and server type
  (``diffretriever_dense``, ...) that name it.
- *fusion side*: ``dense`` kinds are run A of a hybrid (weighted by ``alpha`` in the paper's min-max fusion, the
  ``dense_searcher`` of Pyserini's ``HybridSearcher``), ``sparse`` kinds run B. Two indexes of one hybrid must have
  different representations; they are ordered dense, multi, impact.
- *thread safe*: FAISS and Lucene searchers answer concurrent searches (Pyserini's server relies on that); this
  package's own searchers are not audited for it and the server serialises them.

Adding a kind is one :func:`register_kind` call (its opener included). Folders that are not searchable
(``impact-vectors``) are listed in :data:`NOT_SEARCHABLE` with what to do instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .index_format import IndexFormatError, IndexMismatchError

logger = logging.getLogger(__name__)

__all__ = [
    "INDEX_KINDS",
    "NOT_SEARCHABLE",
    "REPRESENTATIONS",
    "IndexKind",
    "KindOptionError",
    "check_options",
    "index_kind",
    "kinds_of",
    "register_kind",
]

REPRESENTATIONS = ("dense", "multi", "impact")
"""Query representations, in the order two sides of a hybrid are fused (the first is run A)."""

Opener = Callable[[Path, Mapping[str, Any], Any, Mapping[str, Any]], Any]
"""``opener(folder, manifest, query_encoder, options) -> searcher`` (options already checked against the kind)."""


class KindOptionError(TypeError):
    """A search option was given for an index kind that has no such option.

    Attributes
    ----------
    option : str
        The option's keyword name (``nprobe``; the CLI spells it ``--nprobe``).
    kinds : tuple of str
        The kind(s) it was given for.
    """

    def __init__(self, message: str, option: str, kinds: Iterable[str]) -> None:
        super().__init__(message)
        self.option = option
        self.kinds = tuple(kinds)


@dataclass(frozen=True)
class IndexKind:
    """One row of the table (module docstring).

    Attributes
    ----------
    name : str
        The manifest ``kind``.
    representation : {'dense', 'multi', 'impact'}
        The query representation that searches it.
    fusion_side : {'dense', 'sparse'}
        Which run of a hybrid it is.
    opener : callable
        ``opener(folder, manifest, query_encoder, options) -> searcher``.
    options : frozenset of str
        Search options (keyword names) the opener accepts.
    thread_safe : bool
        Whether one searcher may answer concurrent ``search`` calls.
    manifest_options : callable, optional
        ``manifest -> options`` that this particular index has, when narrower than ``options`` (an HNSW
        ``dense-ann`` index has no ``nprobe``).
    jvm : bool
        Searched through pyjnius from Python (Pyserini's Lucene searchers build their Java queries call by call).
        pyjnius binds a Java method to its object on the shared method descriptor, so two Python threads calling
        the same Java class's methods at once can reach each other's objects (kivy/pyjnius#287, #563): such
        searches must not run concurrently in one process, even on different searchers.
    """

    name: str
    representation: str
    fusion_side: Literal["dense", "sparse"]
    opener: Opener
    options: frozenset[str] = frozenset()
    thread_safe: bool = False
    manifest_options: Callable[[Mapping[str, Any]], frozenset[str]] | None = None
    jvm: bool = False

    def accepted(self, manifest: Mapping[str, Any] | None = None) -> frozenset[str]:
        """The search options an index of this kind (described by ``manifest``, if given) accepts."""
        if manifest is None or self.manifest_options is None:
            return self.options
        return self.options & self.manifest_options(manifest)


INDEX_KINDS: dict[str, IndexKind] = {}
"""``{manifest kind: IndexKind}``; filled by :func:`register_kind`."""

NOT_SEARCHABLE = {
    "impact-vectors": "holds impact vectors (JsonVectorCollection), not a searchable index; build one with "
    "`python -m pyserini_diffretriever.index lucene --input {folder} --index IDX` and search IDX",
}
"""Manifest kinds that are not searched as they are, with what to do instead (``{folder}`` is filled in)."""


def register_kind(kind: IndexKind) -> IndexKind:
    """Add (or replace) a row of :data:`INDEX_KINDS`; returns it."""
    if kind.representation not in REPRESENTATIONS:
        raise ValueError(f"index kind {kind.name!r}: representation must be one of {REPRESENTATIONS}")
    if kind.fusion_side not in ("dense", "sparse"):
        raise ValueError(f"index kind {kind.name!r}: fusion_side must be 'dense' or 'sparse'")
    INDEX_KINDS[kind.name] = kind
    return kind


def index_kind(kind: str, folder: str | Path = "index") -> IndexKind:
    """The row of a manifest kind.

    Raises
    ------
    IndexFormatError
        Not a searchable kind (with what to do for one of :data:`NOT_SEARCHABLE`).
    """
    if kind in NOT_SEARCHABLE:
        raise IndexFormatError(f"{folder}: {NOT_SEARCHABLE[kind].format(folder=folder)}")
    if kind not in INDEX_KINDS:
        raise IndexFormatError(
            f"{folder}: an index of kind {kind!r} is not searchable; searchable: {', '.join(INDEX_KINDS)}"
        )
    return INDEX_KINDS[kind]


def kinds_of(representation: str) -> tuple[str, ...]:
    """The manifest kinds searched with ``representation`` queries."""
    return tuple(name for name, kind in INDEX_KINDS.items() if kind.representation == representation)


def check_options(
    options: Mapping[str, Any], kind: IndexKind, manifest: Mapping[str, Any] | None = None, where: Any = "index"
) -> None:
    """Refuse a search option the kind (or this index of it) does not have, naming the option and the kind.

    Raises
    ------
    KindOptionError
        For the first such option (a ``TypeError``, as for an unexpected keyword).
    """
    accepted = kind.accepted(manifest)
    for option in options:
        if option not in accepted:
            raise KindOptionError(_refusal(option, kind, accepted, where), option, [kind.name])


def _refusal(option: str, kind: IndexKind, accepted: frozenset[str], where: Any) -> str:
    having = [name for name, row in INDEX_KINDS.items() if option in row.options]
    reason = (
        f"this {kind.name} index has no {option} parameter"
        if option in kind.options
        else f"option {option} does not apply to {kind.name} indexes"
    )
    return (
        f"{where}: {reason} ({kind.name} accepts: {', '.join(sorted(accepted)) or 'no search options'}"
        + (f"; {option} applies to: {', '.join(having)}" if having else "")
        + ")"
    )


# -- openers -------------------------------------------------------------------------------------------------
def check_dimension(where: Path, index_dimension: int | None, encoder: Any, label: str) -> None:
    """Refuse a query encoder whose vectors have another dimension than the index's."""
    settings = encoder.settings() if hasattr(encoder, "settings") else {}
    dimension = getattr(encoder, "dimension", None) or settings.get("hidden_size")
    if index_dimension is not None and dimension is not None and int(dimension) != int(index_dimension):
        raise IndexMismatchError(
            f"{where}: the {label} has dimension {index_dimension} but the query encoder produces {dimension}-dim "
            "vectors (different backbones)",
            {"dimension": (int(index_dimension), int(dimension))},
        )


def _open_faiss(folder: Path, manifest: Mapping[str, Any], query_encoder: Any) -> Any:
    from pyserini.search.faiss import FaissSearcher

    check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
    searcher = FaissSearcher(str(folder), query_encoder)
    if manifest.get("dimension") is not None and searcher.dimension != manifest["dimension"]:
        raise IndexFormatError(
            f"{folder}: the FAISS index has dimension {searcher.dimension}, its manifest says {manifest['dimension']}"
        )
    check_dimension(folder, searcher.dimension, query_encoder, "FAISS index")
    return searcher


def open_dense(folder: Path, manifest: Mapping[str, Any], query_encoder: Any, options: Mapping[str, Any]) -> Any:
    """Pyserini's ``FaissSearcher`` over a flat FAISS folder."""
    return _open_faiss(folder, manifest, query_encoder)


ANN_OPTIONS = {"nprobe": "nprobe", "ef_search": "efSearch"}
"""``dense-ann`` options and the FAISS parameter each sets."""


def _ann_parameters(manifest: Mapping[str, Any]) -> frozenset[str]:
    """The options a ``dense-ann`` index has: those whose FAISS parameter its manifest's ``search`` records."""
    search = manifest.get("search") or {}
    return frozenset(option for option, parameter in ANN_OPTIONS.items() if parameter in search)


def open_dense_ann(folder: Path, manifest: Mapping[str, Any], query_encoder: Any, options: Mapping[str, Any]) -> Any:
    """``FaissSearcher`` over a compressed/ANN FAISS folder, with the manifest's ``nprobe``/``efSearch`` unless
    ``options`` overrides them."""
    from ..indexing.faiss_dense import apply_search_parameters

    searcher = _open_faiss(folder, manifest, query_encoder)
    if searcher.index.ntotal != manifest["num_docs"]:
        raise IndexFormatError(
            f"{folder}: the FAISS index holds {searcher.index.ntotal} vectors, the manifest says "
            f"num_docs={manifest['num_docs']}"
        )
    params = dict(manifest.get("search") or {})
    params.update({ANN_OPTIONS[option]: int(value) for option, value in options.items()})
    apply_search_parameters(searcher.index, params)
    logger.info("dense-ann index %s: %s", folder, ", ".join(f"{k}={v}" for k, v in params.items()) or "exhaustive")
    return searcher


def open_lucene_dense(folder: Path, manifest: Mapping[str, Any], query_encoder: Any, options: Mapping[str, Any]) -> Any:
    """:class:`~.lucene_dense.LuceneDenseSearcher` (Anserini HNSW or flat)."""
    from .lucene_dense import LuceneDenseSearcher

    check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
    return LuceneDenseSearcher(folder, query_encoder, ef_search=options.get("ef_search"), manifest=manifest)


def open_multi(folder: Path, manifest: Mapping[str, Any], query_encoder: Any, options: Mapping[str, Any]) -> Any:
    """:class:`~.multivector.MultiVectorSearcher` over float vectors or codec codes."""
    from .multivector import MultiVectorSearcher

    check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
    searcher = MultiVectorSearcher(folder, query_encoder, **options)
    check_dimension(folder, searcher.dimension, query_encoder, "multi-vector index")
    return searcher


def open_warp(folder: Path, manifest: Mapping[str, Any], query_encoder: Any, options: Mapping[str, Any]) -> Any:
    """:class:`~.warp_index.WarpSearcher` over a cell-major index (its search options default to the manifest's)."""
    from .warp_index import WarpSearcher

    check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
    return WarpSearcher(folder, query_encoder, **options)


def open_impact(folder: Path, manifest: Mapping[str, Any], query_encoder: Any, options: Mapping[str, Any]) -> Any:
    """Pyserini's ``LuceneImpactSearcher`` (its ``min_idf`` defaults to 0 here)."""
    from pyserini.search.lucene import LuceneImpactSearcher

    return LuceneImpactSearcher(str(folder), query_encoder, min_idf=options.get("min_idf", 0))


MULTI_OPTIONS = frozenset({"mode", "candidates", "nprobe", "threads", "sources", "token_hits", "chunk_bytes"})
"""Options of :class:`~.multivector.MultiVectorSearcher` that both multi-vector storages use."""

register_kind(IndexKind("dense", "dense", "dense", open_dense, thread_safe=True))
register_kind(
    IndexKind(
        "dense-ann",
        "dense",
        "dense",
        open_dense_ann,
        frozenset(ANN_OPTIONS),
        thread_safe=True,
        manifest_options=_ann_parameters,
    )
)
register_kind(
    IndexKind(
        "dense-lucene-index",
        "dense",
        "dense",
        open_lucene_dense,
        frozenset({"ef_search"}),
        manifest_options=lambda manifest: frozenset(
            {"ef_search"} if (manifest.get("lucene") or {}).get("hnsw", True) else ()
        ),
        jvm=True,
    )
)
register_kind(
    IndexKind(
        "multi",
        "multi",
        "dense",
        open_multi,
        MULTI_OPTIONS | {"token_index", "nlist", "ef_search", "factory", "mmap"},
    )
)
register_kind(
    IndexKind(
        "multi-compressed",
        "multi",
        "dense",
        open_multi,
        MULTI_OPTIONS | {"centroid_candidates", "rerank", "rerank_index"},
    )
)
register_kind(
    IndexKind(
        "multi-warp", "multi", "dense", open_warp, frozenset({"nprobe", "candidates", "rerank"}), thread_safe=True
    )
)
# Not thread safe (jvm): LuceneImpactSearcher fills a java.util.HashMap term by term through pyjnius; searched from
# 16 threads at once, ~0.7% of the searches got another query's terms or lost some of their own (wrong hits),
# tests/serving/test_app.py's concurrent test saw it as a ranking that differed from the search CLI's.
register_kind(IndexKind("impact-index", "impact", "sparse", open_impact, frozenset({"min_idf"}), jvm=True))

"""Open the right searcher for an index folder, with a query encoder that matches its documents.

Why: an index folder's manifest says what it is (``dense``, ``multi``, ``impact-index``) and which encoder
settings produced it. From that this module builds Pyserini's ``FaissSearcher`` or ``LuceneImpactSearcher``
(unchanged) or our :class:`~.multivector.MultiVectorSearcher`, creates a
:class:`~pyserini_diffretriever.encoders.DiffRetrieverQueryEncoder` with the document side's settings unless
one is given, and refuses a query encoder whose vectors cannot be compared with the documents'.

What must match (:data:`COMPATIBILITY_KEYS`): only settings that do not depend on the side -- the backbone and
its revision, adapter, tokenizer (vocabulary fingerprint and size), hidden size, mask token and read-out
alignment, plus the impact quantisation for impact indexes. ``k``, prompt, ``max_length`` and ``dtype`` may
legitimately differ between queries and documents and are not compared.

Pyserini's searchers start the JVM on import; they are imported only when such an index is opened.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from .index_format import IndexFormatError, IndexMismatchError, read_manifest

logger = logging.getLogger(__name__)

__all__ = [
    "COMPATIBILITY_KEYS",
    "REPRESENTATION_OF_KIND",
    "check_encoder_compatibility",
    "open_searcher",
    "query_encoder_for",
]

REPRESENTATION_OF_KIND = {"dense": "dense", "multi": "multi", "impact-index": "impact"}
"""Query-encoder representation that searches each searchable index kind."""

COMPATIBILITY_KEYS = (
    "backbone",
    "model_type",
    "revision",
    "adapter",
    "vocabulary_sha256",
    "tokenizer_size",
    "vocab_size",
    "hidden_size",
    "mask_token_id",
    "logits",
)
"""Encoder settings that must be equal on both sides (compared when both sides record them)."""

IMPACT_COMPATIBILITY_KEYS = ("quantization",)
"""Further keys that must match for impact indexes (integer weights on one scale)."""

DOCUMENT_SETTINGS_FOR_QUERIES = ("adapter", "logits", "denoise_steps", "sparse_top_k", "quantization", "rounding")
"""Document-side settings a query encoder built from a manifest inherits (the side-specific ones do not)."""

PROMPT_VARIANTS = ("one", "few", "three")


def check_encoder_compatibility(
    index_settings: Mapping[str, Any],
    encoder_settings: Mapping[str, Any],
    kind: str,
    where: str | os.PathLike = "index",
    ignore: Iterable[str] = (),
) -> None:
    """Raise if a query encoder's settings cannot search an index built with ``index_settings``.

    Parameters
    ----------
    index_settings : mapping
        The manifest's ``encoder`` dict (document side).
    encoder_settings : mapping
        ``query_encoder.settings()``.
    kind : str
        The manifest's kind (decides the expected representation and whether quantisation matters).
    where : str or PathLike
        Named in the message (the index folder).
    ignore : iterable of str
        Keys not to compare (e.g. ``backbone`` after moving a checkpoint to another folder).

    Raises
    ------
    IndexMismatchError
        Listing every differing key with both values.
    """
    skipped = set(ignore)
    keys = COMPATIBILITY_KEYS + (IMPACT_COMPATIBILITY_KEYS if kind.startswith("impact") else ())
    differences = {
        key: (index_settings[key], encoder_settings[key])
        for key in keys
        if key not in skipped and key in index_settings and key in encoder_settings
        and index_settings[key] != encoder_settings[key]
    }
    expected = REPRESENTATION_OF_KIND.get(kind)
    actual = encoder_settings.get("representation")
    if expected and actual is not None and actual != expected and "representation" not in skipped:
        differences["representation"] = (expected, actual)
    if differences:
        listed = "; ".join(f"{key}: index {a!r} vs query encoder {b!r}" for key, (a, b) in differences.items())
        raise IndexMismatchError(
            f"{where}: the query encoder does not match the encoder that built this {kind} index ({listed}). "
            "Use the same backbone/adapter/tokenizer settings as for the documents"
            + (" (or ignore keys that differ only in name, e.g. a moved checkpoint folder)" if "backbone" in
               differences else ""),
            differences,
        )


def _check_dimension(where: Path, index_dimension: int | None, encoder: Any, label: str) -> None:
    settings = encoder.settings() if hasattr(encoder, "settings") else {}
    dimension = getattr(encoder, "dimension", None) or settings.get("hidden_size")
    if index_dimension is not None and dimension is not None and int(dimension) != int(index_dimension):
        raise IndexMismatchError(
            f"{where}: the {label} has dimension {index_dimension} but the query encoder produces {dimension}-dim "
            "vectors (different backbones)",
            {"dimension": (int(index_dimension), int(dimension))},
        )


def query_encoder_for(
    manifest: Mapping[str, Any],
    *,
    model: Any = None,
    k: int | None = None,
    prompt: str | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    max_length: int | None = None,
    batch_size: int | None = None,
) -> Any:
    """A ``DiffRetrieverQueryEncoder`` for the index described by ``manifest``.

    Parameters
    ----------
    manifest : mapping
        The index manifest (its ``kind`` picks the representation, its ``encoder`` the settings).
    model : str, PathLike or DiffRetrieverModel, optional
        Checkpoint to load (default: the manifest's ``encoder.backbone``), or an already loaded model to share.
    k : int, optional
        Query K (default: the backbone's query default).
    prompt : str, optional
        Query prompt variant or YAML (default: the document side's variant name, else ``few``).
    device, dtype, max_length, batch_size
        Query-side runtime settings (encoder defaults when ``None``).
    """
    from ..encoders import DiffRetrieverQueryEncoder

    kind = manifest.get("kind")
    if kind not in REPRESENTATION_OF_KIND:
        raise IndexFormatError(f"an index of kind {kind!r} is not searchable")
    settings = manifest.get("encoder", {})
    source = model if model is not None else settings.get("backbone")
    if source is None:
        raise IndexFormatError("the index manifest records no encoder backbone; give the query encoder model "
                               "explicitly (--encoder)")
    options: dict[str, Any] = {
        key: settings[key] for key in DOCUMENT_SETTINGS_FOR_QUERIES if settings.get(key) is not None
    }
    if prompt is None and settings.get("prompt") in PROMPT_VARIANTS:
        prompt = settings["prompt"]
    for key, value in (("k", k), ("prompt", prompt), ("dtype", dtype), ("max_length", max_length),
                       ("batch_size", batch_size)):
        if value is not None:
            options[key] = value
    logger.info("query encoder for %s index: %s (%s)", kind, source if isinstance(source, (str, Path)) else
                type(source).__name__, ", ".join(f"{key}={value}" for key, value in options.items()))
    return DiffRetrieverQueryEncoder(source, representation=REPRESENTATION_OF_KIND[kind], device=device, **options)


def open_searcher(
    index_dir: str | os.PathLike,
    query_encoder: Any = None,
    *,
    model: Any = None,
    k: int | None = None,
    prompt: str | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    max_length: int | None = None,
    batch_size: int | None = None,
    ignore_mismatch: Iterable[str] = (),
    min_idf: float = 0,
    **multi_options: Any,
) -> Any:
    """Open the searcher for an index folder written by this package.

    Parameters
    ----------
    index_dir : str or PathLike
        A ``dense`` FAISS folder, a ``multi`` folder or a Lucene ``impact-index``.
    query_encoder : object, optional
        Used as is (after the compatibility check when it has ``settings()``); default: built by
        :func:`query_encoder_for` from the manifest and the options below.
    model, k, prompt, device, dtype, max_length, batch_size
        See :func:`query_encoder_for` (ignored when ``query_encoder`` is given).
    ignore_mismatch : iterable of str
        Settings keys not to compare (see :func:`check_encoder_compatibility`).
    min_idf : float
        ``LuceneImpactSearcher``'s ``min_idf`` (query terms with ``idf <= min_idf`` are dropped; note that with
        the default 0 a term occurring in every document is dropped too).
    **multi_options
        Passed to :class:`~.multivector.MultiVectorSearcher` (``mode``, ``candidates``, ``nprobe``, ``threads``...).

    Returns
    -------
    object
        ``FaissSearcher``, ``LuceneImpactSearcher`` or ``MultiVectorSearcher``; each has ``search`` and
        ``batch_search`` returning hits with ``.docid`` and ``.score``, and ``query_encoder``.

    Raises
    ------
    IndexFormatError
        Not a searchable index of this package (e.g. an ``impact-vectors`` folder that still needs indexing).
    IndexMismatchError
        The query encoder does not match the documents (settings or dimension).
    """
    folder = Path(index_dir)
    manifest = read_manifest(folder)
    kind = manifest["kind"]
    if kind == "impact-vectors":
        raise IndexFormatError(
            f"{folder}: holds impact vectors (JsonVectorCollection), not a searchable index; build one with "
            f"`python -m pyserini_diffretriever.index lucene --input {folder} --index IDX` and search IDX"
        )
    if multi_options and kind != "multi":
        raise TypeError(f"{folder}: options {sorted(multi_options)} apply to multi-vector indexes only")
    if query_encoder is None:
        query_encoder = query_encoder_for(manifest, model=model, k=k, prompt=prompt, device=device, dtype=dtype,
                                          max_length=max_length, batch_size=batch_size)
    if hasattr(query_encoder, "settings"):
        check_encoder_compatibility(manifest["encoder"], query_encoder.settings(), kind, folder, ignore_mismatch)
    if kind == "dense":
        from pyserini.search.faiss import FaissSearcher

        _check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
        searcher = FaissSearcher(str(folder), query_encoder)
        if manifest.get("dimension") is not None and searcher.dimension != manifest["dimension"]:
            raise IndexFormatError(f"{folder}: the FAISS index has dimension {searcher.dimension}, its manifest "
                                   f"says {manifest['dimension']}")
        _check_dimension(folder, searcher.dimension, query_encoder, "FAISS index")
        return searcher
    if kind == "multi":
        from .multivector import MultiVectorSearcher

        _check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
        searcher = MultiVectorSearcher(folder, query_encoder, **multi_options)
        _check_dimension(folder, searcher.dimension, query_encoder, "multi-vector index")
        return searcher
    from pyserini.search.lucene import LuceneImpactSearcher

    return LuceneImpactSearcher(str(folder), query_encoder, min_idf=min_idf)

"""Open the right searcher for an index folder, with a query encoder that matches its documents.

Why: an index folder's manifest says what it is (``dense``, ``dense-ann``, ``dense-lucene-index``, ``multi``,
``impact-index``) and which encoder settings produced it. From that this module builds Pyserini's
``FaissSearcher`` (flat or compressed/ANN; the latter with the ``nprobe``/``efSearch`` its manifest records) or
``LuceneImpactSearcher`` (unchanged), or our :class:`~.lucene_dense.LuceneDenseSearcher` or
:class:`~.multivector.MultiVectorSearcher`, creates a
:class:`~pyserini_diffretriever.encoders.DiffRetrieverQueryEncoder` with the document side's settings unless
one is given, and refuses a query encoder whose vectors cannot be compared with the documents'.

What must match (:data:`COMPATIBILITY_KEYS`): the settings that do not depend on the side -- the backbone and
its revision, adapter (and its weights' sha256), tokenizer (vocabulary fingerprint and size), hidden size, mask token and read-out
alignment, plus the impact quantisation for impact indexes -- compared with the manifest's ``encoder``.

The query K and prompt legitimately differ from the documents' (Dream pairs K_q=4 with K_p=16, and the query
prompt YAMLs differ from the passage ones), so they are compared with what the index *expects of its queries*:
the manifest's ``query`` record, written at encode time (:data:`QUERY_KEYS`; see
:func:`pyserini_diffretriever.pipeline.expected_query_settings`)::

    "query": {"k": 4, "prompt": "few", "prompt_sha256": "<hex>", "max_length": 512}

``prompt`` is the variant name, or ``"sha256:<hex>"`` (the YAML's content hash, independent of K) for a custom
YAML, whose path at encode time is kept as ``prompt_file``; ``prompt_sha256`` is the digest of the K-adapted
prompt the query encoder reports in ``settings()``. The query encoder built from a manifest takes K, prompt and
``max_length`` from that record, so the normal path always matches. Manifests written before the record existed
have no ``query`` key: nothing more is compared for them. ``max_length`` and ``dtype`` are never compared.

Pyserini's searchers start the JVM on import; they are imported only when such an index is opened.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..settings import PROMPT_HASH_PREFIX, PROMPT_VARIANTS, EncoderSettings
from ..writers.manifest import ManifestError
from ..writers.verify import verify_output
from .index_format import IndexFormatError, IndexMismatchError, read_manifest

logger = logging.getLogger(__name__)

__all__ = [
    "COMPATIBILITY_KEYS",
    "MISMATCH_KEYS",
    "QUERY_KEYS",
    "REPRESENTATION_OF_KIND",
    "check_encoder_compatibility",
    "open_searcher",
    "query_encoder_for",
]

REPRESENTATION_OF_KIND = {
    "dense": "dense",
    "dense-ann": "dense",
    "dense-lucene-index": "dense",
    "multi": "multi",
    "multi-compressed": "multi",
    "impact-index": "impact",
}

MULTI_KINDS = ("multi", "multi-compressed")
"""Multi-vector kinds: float vectors, or codec codes (both searched by ``MultiVectorSearcher``)."""
"""Query-encoder representation that searches each searchable index kind."""

COMPATIBILITY_KEYS = (
    "backbone",
    "model_type",
    "revision",
    "adapter",
    "adapter_sha256",
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

DOCUMENT_SETTINGS_FOR_QUERIES = EncoderSettings.inherited_by_queries()
"""Document-side settings a query encoder built from a manifest inherits (the side-specific ones do not)."""

QUERY_KEYS = ("k", "prompt")
"""Query-side settings compared with the manifest's ``query`` record (when the manifest has one)."""

MISMATCH_KEYS = COMPATIBILITY_KEYS + IMPACT_COMPATIBILITY_KEYS + ("representation",) + QUERY_KEYS
"""Every key :func:`check_encoder_compatibility` may report (and ``ignore`` may name)."""


def prompt_source_sha256(prompt: Any) -> str | None:
    """Content hash of a query prompt given by variant name, YAML path or ``"sha256:<hex>"`` (``None``: unknown).

    Why the unadapted content: the K-adapted prompt text changes with K, so two encoders with the same YAML and
    different K would otherwise also differ in prompt; comparing the source keeps the two findings apart.
    """
    if not isinstance(prompt, str) or not prompt:
        return None
    if prompt.startswith(PROMPT_HASH_PREFIX):
        return prompt[len(PROMPT_HASH_PREFIX) :]
    from ..representation.prompts import PromptError, load_prompt  # the package imports torch: only when needed

    try:
        return load_prompt(prompt, "query").sha256()
    except (PromptError, OSError, ValueError):
        return None


def _same_query_prompt(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Whether a query encoder's prompt is the one the index expects (see the module docstring)."""
    want, have = expected.get("prompt_sha256"), actual.get("prompt_sha256")
    if want and have:
        if want == have:
            return True
        if expected.get("k") == actual.get("k"):
            return False  # same K, yet another adapted prompt: the text differs
    want_source, have_source = prompt_source_sha256(expected.get("prompt")), prompt_source_sha256(actual.get("prompt"))
    if want_source is None or have_source is None:
        return expected.get("prompt") == actual.get("prompt")
    return want_source == have_source


def _query_differences(
    expected: Mapping[str, Any], actual: Mapping[str, Any], skipped: set[str]
) -> dict[str, tuple[Any, Any]]:
    """``{key: (index expects, query encoder has)}`` for the query K and prompt."""
    differences: dict[str, tuple[Any, Any]] = {}
    if (
        "k" not in skipped
        and expected.get("k") is not None
        and actual.get("k") is not None
        and expected["k"] != actual["k"]
    ):
        differences["k"] = (expected["k"], actual["k"])
    if (
        "prompt" not in skipped
        and expected.get("prompt") is not None
        and actual.get("prompt") is not None
        and not _same_query_prompt(expected, actual)
    ):
        differences["prompt"] = (expected["prompt"], actual["prompt"])
    return differences


def check_encoder_compatibility(
    index_settings: Mapping[str, Any],
    encoder_settings: Mapping[str, Any],
    kind: str,
    where: str | os.PathLike = "index",
    ignore: Iterable[str] = (),
    query: Mapping[str, Any] | None = None,
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
        Keys not to compare (e.g. ``backbone`` after moving a checkpoint to another folder, ``k``/``prompt`` to
        search with other query settings on purpose); names outside :data:`MISMATCH_KEYS` raise ``ValueError``.
    query : mapping, optional
        The manifest's ``query`` record (what the index expects of its queries); ``None`` (older manifests):
        the query K and prompt are not compared.

    Raises
    ------
    IndexMismatchError
        Listing every differing key with both values.
    ValueError
        ``ignore`` names an unknown key (a typo would silently ignore nothing).
    """
    skipped = set(ignore)
    unknown = sorted(skipped - set(MISMATCH_KEYS))
    if unknown:
        raise ValueError(f"cannot ignore unknown settings {unknown}; known: {', '.join(MISMATCH_KEYS)}")
    keys = COMPATIBILITY_KEYS + (IMPACT_COMPATIBILITY_KEYS if kind.startswith("impact") else ())
    differences = {
        key: (index_settings[key], encoder_settings[key])
        for key in keys
        if key not in skipped
        and key in index_settings
        and key in encoder_settings
        and index_settings[key] != encoder_settings[key]
    }
    expected = REPRESENTATION_OF_KIND.get(kind)
    actual = encoder_settings.get("representation")
    if expected and actual is not None and actual != expected and "representation" not in skipped:
        differences["representation"] = (expected, actual)
    if query is not None:
        differences.update(_query_differences(query, encoder_settings, skipped))
    if differences:
        raise _mismatch_error(differences, kind, where)


def _mismatch_error(
    differences: Mapping[str, tuple[Any, Any]], kind: str, where: str | os.PathLike
) -> IndexMismatchError:
    """The error listing every difference, with advice for setting and query-record differences."""
    listed = "; ".join(
        f"{key}: index expects queries with {a!r} vs query encoder {b!r}"
        if key in QUERY_KEYS
        else f"{key}: index {a!r} vs query encoder {b!r}"
        for key, (a, b) in differences.items()
    )
    advice = []
    if set(differences) - set(QUERY_KEYS):
        advice.append(
            "use the same backbone/adapter/tokenizer settings as for the documents"
            + (
                " (or ignore keys that differ only in name, e.g. a moved checkpoint folder)"
                if "backbone" in differences
                else ""
            )
        )
    if set(differences) & set(QUERY_KEYS):
        named = " ".join(key for key in QUERY_KEYS if key in differences)
        advice.append(
            "leave the query K and prompt at the index's defaults (its manifest 'query' record), or "
            f"search with other query settings on purpose with --ignore-mismatch {named}"
        )
    hint = "; ".join(advice)
    return IndexMismatchError(
        f"{where}: the query encoder does not match the encoder that built this {kind} index ({listed}). "
        f"{hint[:1].upper()}{hint[1:]}",
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


def _default_query_prompt(expected: Mapping[str, Any], where: str | os.PathLike) -> str | None:
    """The prompt a query encoder gets from the manifest's ``query`` record (a variant, or the YAML if still there)."""
    prompt = expected.get("prompt")
    if not isinstance(prompt, str) or not prompt.startswith(PROMPT_HASH_PREFIX):
        return prompt
    source = expected.get("prompt_file")
    if source and prompt_source_sha256(source) == prompt[len(PROMPT_HASH_PREFIX) :]:
        return source
    raise IndexFormatError(
        f"{where}: the index expects queries encoded with a custom prompt YAML (content {prompt}"
        + (f", encoded from {source}, which is missing or has changed" if source else "")
        + "); give that YAML as the query prompt (--prompt PATH)"
    )


def _configure_ann(
    folder: Path, searcher: Any, manifest: Mapping[str, Any], nprobe: int | None, ef_search: int | None
) -> None:
    """Check a loaded ``dense-ann`` index against its manifest and set its search parameters."""
    from ..indexing.faiss_dense import apply_search_parameters

    if searcher.index.ntotal != manifest["num_docs"]:
        raise IndexFormatError(
            f"{folder}: the FAISS index holds {searcher.index.ntotal} vectors, the manifest says "
            f"num_docs={manifest['num_docs']}"
        )
    params = dict(manifest.get("search") or {})
    for key, value in (("nprobe", nprobe), ("efSearch", ef_search)):
        if value is not None:
            if key not in params:
                raise TypeError(f"{folder}: {manifest.get('index', {}).get('factory')} index has no {key} parameter")
            params[key] = int(value)
    apply_search_parameters(searcher.index, params)
    logger.info("dense-ann index %s: %s", folder, ", ".join(f"{k}={v}" for k, v in params.items()) or "exhaustive")


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
    where: str | os.PathLike = "index",
) -> Any:
    """A ``DiffRetrieverQueryEncoder`` for the index described by ``manifest``.

    Parameters
    ----------
    manifest : mapping
        The index manifest (its ``kind`` picks the representation, its ``encoder`` the settings, its ``query``
        record the query K, prompt and ``max_length``).
    model : str, PathLike or DiffRetrieverModel, optional
        Checkpoint to load (default: the manifest's ``encoder.backbone``), or an already loaded model to share.
    k : int, optional
        Query K (default: the manifest's ``query.k``; without that record, the backbone's query default).
    prompt : str, optional
        Query prompt variant or YAML (default: the manifest's ``query.prompt``; without that record, the document
        side's variant name, else ``few``).
    device, dtype, max_length, batch_size
        Query-side runtime settings (``max_length`` defaults to ``query.max_length``; others to the encoder's).
    where : str or PathLike
        Named in error messages (the index folder).

    Raises
    ------
    IndexFormatError
        Not a searchable kind, no backbone recorded, or a custom query prompt YAML that cannot be found.
    """
    from ..encoders import DiffRetrieverQueryEncoder

    kind = manifest.get("kind")
    if kind not in REPRESENTATION_OF_KIND:
        raise IndexFormatError(f"an index of kind {kind!r} is not searchable")
    settings = manifest.get("encoder", {})
    source = model if model is not None else settings.get("backbone")
    if source is None:
        raise IndexFormatError(
            "the index manifest records no encoder backbone; give the query encoder model explicitly (--encoder)"
        )
    options: dict[str, Any] = {
        key: settings[key] for key in DOCUMENT_SETTINGS_FOR_QUERIES if settings.get(key) is not None
    }
    expected = manifest.get("query")
    if isinstance(expected, Mapping):
        k = expected.get("k") if k is None else k
        prompt = _default_query_prompt(expected, where) if prompt is None else prompt
        max_length = expected.get("max_length") if max_length is None else max_length
    elif prompt is None and settings.get("prompt") in PROMPT_VARIANTS:
        prompt = settings["prompt"]
    for key, value in (
        ("k", k),
        ("prompt", prompt),
        ("dtype", dtype),
        ("max_length", max_length),
        ("batch_size", batch_size),
    ):
        if value is not None:
            options[key] = value
    logger.info(
        "query encoder for %s index: %s (%s)",
        kind,
        source if isinstance(source, (str, Path)) else type(source).__name__,
        ", ".join(f"{key}={value}" for key, value in options.items()),
    )
    query_options = EncoderSettings.given(representation=REPRESENTATION_OF_KIND[kind], device=device, **options)
    return DiffRetrieverQueryEncoder(source, settings=query_options)


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
    nprobe: int | None = None,
    ef_search: int | None = None,
    **multi_options: Any,
) -> Any:
    """Open the searcher for an index folder written by this package.

    Parameters
    ----------
    index_dir : str or PathLike
        A ``dense`` FAISS folder, a ``dense-ann`` (compressed/ANN FAISS) folder, a ``multi`` folder, or a Lucene
        ``impact-index`` or ``dense-lucene-index``.
    query_encoder : object, optional
        Used as is (after the compatibility check when it has ``settings()``); default: built by
        :func:`query_encoder_for` from the manifest and the options below.
    model, k, prompt, device, dtype, max_length, batch_size
        See :func:`query_encoder_for` (ignored when ``query_encoder`` is given); K, prompt and ``max_length``
        default to the manifest's ``query`` record.
    ignore_mismatch : iterable of str
        Settings keys not to compare, from :data:`MISMATCH_KEYS` (see :func:`check_encoder_compatibility`).
    min_idf : float
        ``LuceneImpactSearcher``'s ``min_idf`` (query terms with ``idf <= min_idf`` are dropped; note that with
        the default 0 a term occurring in every document is dropped too).
    nprobe : int, optional
        IVF lists probed per query: of a ``dense-ann`` index (default: its manifest's ``search.nprobe``) or of a
        multi-vector token index.
    ef_search : int, optional
        HNSW ``efSearch`` of a ``dense-ann`` HNSW index or a ``dense-lucene-index`` (default: the manifest's).
    **multi_options
        Passed to :class:`~.multivector.MultiVectorSearcher` (``mode``, ``candidates``, ``threads``...).

    Returns
    -------
    object
        ``FaissSearcher`` (``dense`` and ``dense-ann``), ``LuceneImpactSearcher``,
        :class:`~.lucene_dense.LuceneDenseSearcher` or ``MultiVectorSearcher``; each has ``search`` and
        ``batch_search`` returning hits with ``.docid`` and ``.score``, and ``query_encoder``.

    Raises
    ------
    IndexFormatError
        Not a searchable index of this package (e.g. an ``impact-vectors`` folder that still needs indexing), or
        a damaged one: files missing, truncated or disagreeing with the manifest (checked by
        :func:`~pyserini_diffretriever.writers.verify.verify_output` before anything is loaded; the message
        names the folder and the file).
    IndexMismatchError
        The query encoder does not match the documents (settings, query K/prompt, or dimension).
    ValueError
        ``ignore_mismatch`` names an unknown key.
    """
    folder = Path(index_dir)
    manifest = read_manifest(folder)
    kind = manifest["kind"]
    ignore_mismatch = tuple(ignore_mismatch)
    _check_request(folder, kind, multi_options, ignore_mismatch)
    _check_knobs(folder, kind, nprobe, ef_search)
    if nprobe is not None and kind in MULTI_KINDS:
        multi_options["nprobe"] = nprobe
    _verify_folder(folder, kind)
    options = {"k": k, "prompt": prompt, "dtype": dtype, "max_length": max_length, "batch_size": batch_size}
    query_encoder = _checked_query_encoder(folder, manifest, query_encoder, ignore_mismatch, model, device, options)
    return _open_kind(folder, manifest, query_encoder, min_idf, nprobe, ef_search, multi_options)


def _checked_query_encoder(
    folder: Path,
    manifest: Mapping[str, Any],
    query_encoder: Any,
    ignore_mismatch: tuple[str, ...],
    model: Any,
    device: str,
    options: Mapping[str, Any],
) -> Any:
    """The given query encoder, else one built from the manifest; refused (before any index is loaded) when its
    settings do not match the documents'."""
    if query_encoder is None:
        query_encoder = query_encoder_for(manifest, model=model, device=device, where=folder, **options)
    if hasattr(query_encoder, "settings"):
        query = manifest.get("query") if isinstance(manifest.get("query"), Mapping) else None
        check_encoder_compatibility(
            manifest["encoder"], query_encoder.settings(), manifest["kind"], folder, ignore_mismatch, query=query
        )
    return query_encoder


def _open_kind(
    folder: Path,
    manifest: Mapping[str, Any],
    query_encoder: Any,
    min_idf: float,
    nprobe: int | None,
    ef_search: int | None,
    multi_options: Mapping[str, Any],
) -> Any:
    """The searcher for the manifest's kind (the request was already checked against that kind)."""
    kind = manifest["kind"]
    if kind in ("dense", "dense-ann"):
        searcher = _open_dense(folder, manifest, query_encoder)
        if kind == "dense-ann":
            _configure_ann(folder, searcher, manifest, nprobe, ef_search)
        return searcher
    if kind == "dense-lucene-index":
        from .lucene_dense import LuceneDenseSearcher

        _check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
        return LuceneDenseSearcher(folder, query_encoder, ef_search=ef_search, manifest=manifest)
    if kind in MULTI_KINDS:
        return _open_multi(folder, manifest, query_encoder, multi_options)
    from pyserini.search.lucene import LuceneImpactSearcher

    return LuceneImpactSearcher(str(folder), query_encoder, min_idf=min_idf)


def _check_knobs(folder: Path, kind: str, nprobe: int | None, ef_search: int | None) -> None:
    """Refuse search knobs the index kind does not have."""
    if nprobe is not None and kind not in (*MULTI_KINDS, "dense-ann"):
        raise TypeError(f"{folder}: nprobe applies to dense-ann and multi-vector indexes only, not {kind}")
    if ef_search is not None and kind not in ("dense-ann", "dense-lucene-index"):
        raise TypeError(f"{folder}: ef_search applies to dense-ann and dense-lucene-index indexes only, not {kind}")


def _check_request(folder: Path, kind: str, multi_options: Mapping[str, Any], ignore_mismatch: tuple[str, ...]) -> None:
    """Refuse an unsearchable kind, options of another kind, and unknown ``ignore_mismatch`` keys."""
    if kind == "impact-vectors":
        raise IndexFormatError(
            f"{folder}: holds impact vectors (JsonVectorCollection), not a searchable index; build one with "
            f"`python -m pyserini_diffretriever.index lucene --input {folder} --index IDX` and search IDX"
        )
    if multi_options and kind not in MULTI_KINDS:
        raise TypeError(f"{folder}: options {sorted(multi_options)} apply to multi-vector indexes only")
    unknown = sorted(set(ignore_mismatch) - set(MISMATCH_KEYS))
    if unknown:
        raise ValueError(f"ignore_mismatch: unknown settings {unknown}; known: {', '.join(MISMATCH_KEYS)}")


def _verify_folder(folder: Path, kind: str) -> None:
    """Sizes and headers: a truncated FAISS index or vectors.npy is named here, not by a FAISS traceback."""
    try:
        verify_output(folder, kind)
    except IndexFormatError:
        raise
    except ManifestError as error:
        raise IndexFormatError(str(error)) from error


def _open_dense(folder: Path, manifest: Mapping[str, Any], query_encoder: Any) -> Any:
    from pyserini.search.faiss import FaissSearcher

    _check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
    searcher = FaissSearcher(str(folder), query_encoder)
    if manifest.get("dimension") is not None and searcher.dimension != manifest["dimension"]:
        raise IndexFormatError(
            f"{folder}: the FAISS index has dimension {searcher.dimension}, its manifest says {manifest['dimension']}"
        )
    _check_dimension(folder, searcher.dimension, query_encoder, "FAISS index")
    return searcher


def _open_multi(folder: Path, manifest: Mapping[str, Any], query_encoder: Any, multi_options: Mapping[str, Any]) -> Any:
    from .multivector import MultiVectorSearcher

    _check_dimension(folder, manifest.get("dimension"), query_encoder, "index manifest")
    searcher = MultiVectorSearcher(folder, query_encoder, **multi_options)
    _check_dimension(folder, searcher.dimension, query_encoder, "multi-vector index")
    return searcher

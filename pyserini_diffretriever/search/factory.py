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

Which kinds exist, how each is opened and which search options it accepts is the table in :mod:`.kinds`;
:func:`open_searcher` opens one folder by its row, :func:`open_searchers` one or two (fused), sharing one loaded
model per backbone + adapter -- the search CLI and the server open their indexes with it.

Pyserini's searchers start the JVM on import; they are imported only when such an index is opened.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..settings import PROMPT_HASH_PREFIX, PROMPT_VARIANTS, EncoderSettings
from ..writers.manifest import ManifestError
from ..writers.verify import verify_output
from .fusion import DEFAULT_DEPTH, fuse
from .index_format import IndexFormatError, IndexMismatchError, read_manifest
from .kinds import INDEX_KINDS, REPRESENTATIONS, IndexKind, KindOptionError, check_options, index_kind, kinds_of

logger = logging.getLogger(__name__)

__all__ = [
    "COMPATIBILITY_KEYS",
    "MISMATCH_KEYS",
    "QUERY_KEYS",
    "check_encoder_compatibility",
    "open_searcher",
    "open_searchers",
    "query_encoder_for",
]

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
    expected = INDEX_KINDS[kind].representation if kind in INDEX_KINDS else None
    keys = COMPATIBILITY_KEYS + (IMPACT_COMPATIBILITY_KEYS if expected == "impact" else ())
    differences = {
        key: (index_settings[key], encoder_settings[key])
        for key in keys
        if key not in skipped
        and key in index_settings
        and key in encoder_settings
        and index_settings[key] != encoder_settings[key]
    }
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
    if kind not in INDEX_KINDS:
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
    query_options = EncoderSettings.given(representation=INDEX_KINDS[kind].representation, device=device, **options)
    return DiffRetrieverQueryEncoder(source, settings=query_options)


def open_searcher(
    index_dir: str | os.PathLike,
    query_encoder: Any = None,
    *,
    model: Any = None,
    query_slots: int | None = None,
    prompt: str | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    max_length: int | None = None,
    batch_size: int | None = None,
    ignore_mismatch: Iterable[str] = (),
    k: int | None = None,
    **search_options: Any,
) -> Any:
    """Open the searcher for an index folder written by this package.

    Parameters
    ----------
    index_dir : str or PathLike
        A folder of any kind in :data:`~.kinds.INDEX_KINDS` (``dense``, ``dense-ann``, ``dense-lucene-index``,
        ``multi``, ``multi-compressed``, ``impact-index``).
    query_encoder : object, optional
        Used as is (after the compatibility check when it has ``settings()``); default: built by
        :func:`query_encoder_for` from the manifest and the options below.
    model, prompt, device, dtype, max_length, batch_size
        See :func:`query_encoder_for` (ignored when ``query_encoder`` is given); the prompt and ``max_length``
        default to the manifest's ``query`` record.
    query_slots : int, optional
        Mask slots K_q of each query (default: the manifest's ``query.k``). Not the number of hits: that is
        ``search(q, k)``'s ``k``.
    ignore_mismatch : iterable of str
        Settings keys not to compare, from :data:`MISMATCH_KEYS` (see :func:`check_encoder_compatibility`).
    k : int, optional
        Deprecated name of ``query_slots``.
    **search_options
        Search options of the folder's kind (its row's ``options`` in :mod:`.kinds`): ``nprobe``/``ef_search``
        of a ``dense-ann`` or ``dense-lucene-index`` index, ``min_idf`` of an impact index, the
        :class:`~.multivector.MultiVectorSearcher` options (``mode``, ``candidates``, ``rerank``...) of a
        multi-vector one. ``None`` values mean "the default" and are left out.

    Returns
    -------
    object
        The kind's searcher (``FaissSearcher``, ``LuceneImpactSearcher``, :class:`~.lucene_dense.LuceneDenseSearcher`
        or :class:`~.multivector.MultiVectorSearcher`); each has ``search`` and ``batch_search`` returning hits
        with ``.docid`` and ``.score``, and ``query_encoder``.

    Raises
    ------
    IndexFormatError
        Not a searchable index of this package (e.g. an ``impact-vectors`` folder that still needs indexing), or
        a damaged one: files missing, truncated or disagreeing with the manifest (checked by
        :func:`~pyserini_diffretriever.writers.verify.verify_output` before anything is loaded; the message
        names the folder and the file).
    IndexMismatchError
        The query encoder does not match the documents (settings, query K/prompt, or dimension).
    KindOptionError
        A search option the folder's kind does not have (a ``TypeError``; the message names both).
    ValueError
        ``ignore_mismatch`` names an unknown key.
    """
    query_slots = _query_slots(query_slots, k)
    folder = Path(index_dir)
    manifest = read_manifest(folder)
    kind = index_kind(manifest["kind"], folder)
    options = {key: value for key, value in search_options.items() if value is not None}
    check_options(options, kind, manifest, folder)
    ignore_mismatch = tuple(ignore_mismatch)
    unknown = sorted(set(ignore_mismatch) - set(MISMATCH_KEYS))
    if unknown:
        raise ValueError(f"ignore_mismatch: unknown settings {unknown}; known: {', '.join(MISMATCH_KEYS)}")
    _verify_folder(folder, kind.name)
    encoder_options = {
        "k": query_slots,
        "prompt": prompt,
        "dtype": dtype,
        "max_length": max_length,
        "batch_size": batch_size,
    }
    query_encoder = _checked_query_encoder(
        folder, manifest, query_encoder, ignore_mismatch, model, device, encoder_options
    )
    return kind.opener(folder, manifest, query_encoder, options)


def _query_slots(query_slots: int | None, k: int | None) -> int | None:
    """``query_slots``, or the deprecated ``k`` with a warning."""
    if k is None:
        return query_slots
    if query_slots is not None:
        raise TypeError("give query_slots only (k is its deprecated name)")
    warnings.warn(
        "open_searcher(k=...) is deprecated: it sets the query's mask slots, not the hits; use query_slots=",
        DeprecationWarning,
        stacklevel=3,
    )
    return k


def open_searchers(
    indexes: Sequence[str | os.PathLike | tuple[str | None, str | os.PathLike]],
    *,
    fusion: str = "minmax",
    alpha: float | None = None,
    depth: int = DEFAULT_DEPTH,
    normalization: bool = False,
    weight_on_dense: bool = False,
    encoder: str | os.PathLike | None = None,
    models: dict[tuple[str, str | None], Any] | None = None,
    search_options: Mapping[str, Any] | None = None,
    prepare: Callable[[Any, IndexKind, Path], Any] | None = None,
    **query_options: Any,
) -> Any:
    """Open one index folder, or two fused into a hybrid, each with the query encoder its manifest describes.

    Parameters
    ----------
    indexes : sequence
        One or two folders, each a path or ``(representation, path)``: with a representation (``dense``,
        ``multi``, ``impact``; the CLI's ``--dense-index``...) the folder's kind must be searched by it.
    fusion, alpha, depth, normalization, weight_on_dense
        How two are fused (:func:`~.fusion.fuse`); they are ordered dense, multi, impact (the first is run A).
    encoder : str or PathLike, optional
        Checkpoint location instead of each manifest's ``encoder.backbone``.
    models : dict, optional
        ``{(checkpoint, adapter): loaded model}`` shared across calls (the server's aliases); indexes built from
        the same checkpoint and adapter share one model either way.
    search_options : mapping, optional
        Search options (:func:`open_searcher`); each goes to the indexes whose kind has it, and one that no index
        has is refused. ``None`` values are left out.
    prepare : callable, optional
        ``prepare(searcher, kind, folder) -> searcher``, applied to each opened index before fusion (the server
        routes the query encoder through its micro-batcher there).
    **query_options
        Query encoder options of :func:`open_searcher` (``query_slots``, ``prompt``, ``device``, ``dtype``,
        ``max_length``, ``batch_size``, ``ignore_mismatch``).

    Raises
    ------
    IndexFormatError
        A folder of another representation than declared, not searchable, or two of one representation.
    KindOptionError
        A search option that none of the indexes has (naming the option and their kinds).
    """
    opened = _declared_kinds(indexes)
    per_index = _distribute(dict(search_options or {}), opened)
    models = {} if models is None else models
    searchers = []
    for (folder, manifest, kind), options in zip(opened, per_index):
        settings = manifest.get("encoder", {})
        source = encoder or settings.get("backbone")
        key = (str(source), settings.get("adapter"))
        searcher = open_searcher(folder, model=models.get(key, source), **query_options, **options)
        loaded = getattr(searcher.query_encoder, "model", None)
        if loaded is not None:
            models.setdefault(key, loaded)
        logger.info("opened %s index %s (%s)", kind.name, folder, type(searcher).__name__)
        searchers.append(prepare(searcher, kind, folder) if prepare is not None else searcher)
    if len(searchers) == 1:
        return searchers[0]
    return fuse(*searchers, fusion, alpha, depth, normalization, weight_on_dense)


def _declared_kinds(
    indexes: Sequence[str | os.PathLike | tuple[str | None, str | os.PathLike]],
) -> list[tuple[Path, dict[str, Any], IndexKind]]:
    """``[(folder, manifest, kind)]`` in fusion order, each checked against its declared representation."""
    if not 1 <= len(indexes) <= 2:
        raise ValueError(f"open one index or fuse two, not {len(indexes)}")
    opened = []
    for entry in indexes:
        declared, path = entry if isinstance(entry, tuple) else (None, entry)
        folder = Path(path)
        manifest = read_manifest(folder)
        kind = index_kind(manifest["kind"], folder)
        if declared is not None and kind.representation != declared:
            raise IndexFormatError(
                f"{folder}: given as a {declared} index, but it holds a {kind.name!r} index "
                f"({declared} kinds: {', '.join(kinds_of(declared))}; this one is a {kind.representation} index)"
            )
        opened.append((folder, manifest, kind))
    opened.sort(key=lambda item: REPRESENTATIONS.index(item[2].representation))
    if len(opened) == 2 and opened[0][2].representation == opened[1][2].representation:
        raise IndexFormatError(
            f"{opened[0][0]} and {opened[1][0]}: both indexes are {opened[0][2].representation} indexes; "
            "fuse two representations"
        )
    return opened


def _distribute(options: dict[str, Any], opened: list[tuple[Path, dict[str, Any], IndexKind]]) -> list[dict[str, Any]]:
    """Each index's share of the search options; an option no index has is refused."""
    shares: list[dict[str, Any]] = [{} for _ in opened]
    for option, value in options.items():
        if value is None:
            continue
        takers = [i for i, (_, manifest, kind) in enumerate(opened) if option in kind.accepted(manifest)]
        if not takers:
            if len(opened) == 1:
                folder, manifest, kind = opened[0]
                check_options({option: value}, kind, manifest, folder)
            named = ", ".join(f"{folder} ({kind.name})" for folder, _, kind in opened)
            having = ", ".join(name for name, row in INDEX_KINDS.items() if option in row.options)
            raise KindOptionError(
                f"option {option} applies to none of the indexes: {named} ({option} applies to: {having or 'none'})",
                option,
                [kind.name for _, _, kind in opened],
            )
        for i in takers:
            shares[i][option] = value
    return shares


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


def _verify_folder(folder: Path, kind: str) -> None:
    """Sizes and headers: a truncated FAISS index or vectors.npy is named here, not by a FAISS traceback."""
    try:
        verify_output(folder, kind)
    except IndexFormatError:
        raise
    except ManifestError as error:
        raise IndexFormatError(str(error)) from error

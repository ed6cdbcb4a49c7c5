"""The ``manifest.json`` that makes every output folder self-describing.

Why: a FAISS ``index``, a ``vectors.npy`` or a folder of JSON vectors says nothing about the encoder, prompt,
``k`` or quantisation that produced it; searching with a mismatched query encoder silently gives poor results.
Every folder this package writes carries a manifest, and readers check it before use.

Layout (``format_version`` 1)::

    {"format": "pyserini-diffretriever", "format_version": 1,
     "kind": "dense" | "multi" | "multi-compressed" | "multi-warp" | "impact-vectors" | "impact-index" | "dense-ann" | "dense-lucene-index",
     "encoder": {...encoder.settings(): backbone facts + the EncoderSettings that shape vectors...}, "num_docs": N,
     "dimension": H,            # dense and multi
     "quantization": 100,       # impact kinds: integer weight = w * quantization, truncated or rounded (encoder "rounding")
     "shard": {"id": i, "num": n},
     "versions": {"package": ..., "pyserini": ..., "torch": ..., "transformers": ..., "faiss": ...},
     "created": "2025-01-01T00:00:00+00:00", ...extra keys per kind}

Folders written by the encode pipeline (and merges and Lucene indexes of them) also carry what the index expects
of its queries (:class:`~pyserini_diffretriever.settings.QuerySettings`),
``"query": {"k": 4, "prompt": "few", "prompt_sha256": "<hex>", "max_length": 512}`` (``prompt``: a
variant, or ``"sha256:<YAML content hash>"`` plus ``"prompt_file"``); searchers default their query encoder to it
and refuse another K or prompt (:mod:`pyserini_diffretriever.search.factory`). Older folders have no ``query``.

``created`` is the only time stamp in an output folder. Set ``SOURCE_DATE_EPOCH`` (seconds since 1970, the
reproducible-builds convention) to fix it; two encodes of the same input are then byte-identical, manifest
included.

A Lucene index folder keeps its copy as ``diffretriever-manifest.json`` (Lucene owns the folder's other names).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from .._version import __version__
from ..layouts import INDEX_MANIFEST_NAME, MANIFEST_NAME
from ..settings import QuerySettings
from . import _files
from .atomic import atomic_write

FORMAT = "pyserini-diffretriever"
FORMAT_VERSION = 1
KINDS = (
    "dense",
    "multi",
    "multi-compressed",
    "multi-warp",
    "impact-vectors",
    "impact-index",
    "dense-ann",
    "dense-lucene-index",
)
_VERSION_DISTRIBUTIONS = {
    "package": "pyserini-diffretriever",
    "pyserini": "pyserini",
    "torch": "torch",
    "transformers": "transformers",
    "faiss": "faiss-cpu",
}


class ManifestError(ValueError):
    """A manifest that is missing, unreadable, or describes something other than what was expected."""


def creation_time() -> str:
    """ISO time stamp for ``created``: now (UTC, seconds), or ``SOURCE_DATE_EPOCH`` when that is set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            moment = _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
        except (ValueError, OverflowError, OSError) as error:
            raise ManifestError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds ({error})") from None
    else:
        moment = _dt.datetime.now(_dt.UTC)
    return moment.isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    """Installed versions of this package and its main dependencies, read without importing them."""
    versions: dict[str, str | None] = {}
    for key, distribution in _VERSION_DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[key] = None
    if versions["faiss"] is None:  # faiss-gpu wheels use another distribution name
        try:
            versions["faiss"] = metadata.version("faiss-gpu")
        except metadata.PackageNotFoundError:
            pass
    if versions["package"] is None:
        versions["package"] = __version__
    return versions


def build_manifest(
    kind: str,
    encoder: Mapping[str, Any] | None,
    num_docs: int,
    *,
    dimension: int | None = None,
    quantization: float | None = None,
    shard: tuple[int, int] = (0, 1),
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a complete manifest dict (format, versions and creation time filled in).

    Parameters
    ----------
    kind : {"dense", "multi", "impact-vectors", "impact-index", "dense-ann", "dense-lucene-index"}
    encoder : mapping
        ``encoder.settings()`` of the document encoder (JSON-serialisable).
    num_docs : int
        Documents in the folder.
    dimension : int, optional
        Vector size (dense and multi).
    quantization : float, optional
        Impact scale (impact kinds); stored as an int when integral (the usual 100).
    shard : (int, int)
        ``(shard_id, shard_num)`` of the corpus slice this folder holds.
    **extra
        Further JSON-serialisable keys (e.g. ``dtype``, ``num_vectors``, ``corpus``); ``query`` may be a
        :class:`~pyserini_diffretriever.settings.QuerySettings` (stored as its record).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown manifest kind {kind!r}; expected one of {KINDS}")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "encoder": dict(encoder or {}),
        "num_docs": int(num_docs),
    }
    if dimension is not None:
        manifest["dimension"] = int(dimension)
    if quantization is not None:
        manifest["quantization"] = int(quantization) if float(quantization).is_integer() else float(quantization)
    manifest["shard"] = {"id": int(shard[0]), "num": int(shard[1])}
    manifest["versions"] = package_versions()
    manifest["created"] = creation_time()
    if isinstance(extra.get("query"), QuerySettings):
        extra["query"] = extra["query"].record()
    manifest.update(extra)
    return manifest


def write_manifest(directory: str | os.PathLike, manifest: Mapping[str, Any], name: str = MANIFEST_NAME) -> Path:
    """Write ``manifest`` to ``directory/name`` atomically (temp file + rename); return the path.

    Missing ``format``/``format_version``/``versions``/``created`` keys are filled in; ``kind`` is required.
    """
    data = dict(manifest)
    if data.get("kind") not in KINDS:
        raise ManifestError(f"manifest kind must be one of {KINDS}, got {data.get('kind')!r}")
    data.setdefault("format", FORMAT)
    data.setdefault("format_version", FORMAT_VERSION)
    data.setdefault("versions", package_versions())
    data.setdefault("created", creation_time())
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    try:
        text = json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ManifestError(f"manifest for {directory} is not JSON-serialisable: {error}") from error

    def write(tmp: str) -> None:
        with _files.open_output(tmp, "wb") as handle:
            handle.write((text + "\n").encode("utf-8"))

    atomic_write(path, write)
    return path


def manifest_path(directory: str | os.PathLike) -> Path:
    """``directory/manifest.json``, or ``directory/diffretriever-manifest.json`` for a Lucene index folder."""
    directory = Path(directory)
    for name in (MANIFEST_NAME, INDEX_MANIFEST_NAME):
        if (directory / name).is_file():
            return directory / name
    return directory / MANIFEST_NAME


def read_manifest(directory: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read and check the manifest of an output folder.

    Parameters
    ----------
    directory : str or PathLike
        An output folder (``manifest.json``) or a Lucene impact index (``diffretriever-manifest.json``).
    kind : str or tuple of str, optional
        Accepted kind(s); anything else raises.

    Raises
    ------
    ManifestError
        If the folder or manifest is missing, not JSON, not ours, of a newer format version, or of another kind.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ManifestError(f"{directory}: not a folder (expected a pyserini-diffretriever output folder)")
    path = manifest_path(directory)
    if not path.is_file():
        partial = sorted(
            p.name for p in directory.parent.glob(directory.name + ".partial*") if not p.name.endswith(".lock")
        )
        hint = (
            f"; found unfinished output {partial[0]} (an interrupted run?)"
            if partial
            else "; was it written by `python -m pyserini_diffretriever.encode` and did that run finish?"
        )
        raise ManifestError(f"{directory}: no {MANIFEST_NAME} or {INDEX_MANIFEST_NAME}{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: corrupt manifest ({error})") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(
            f"{path}: not a pyserini-diffretriever manifest (format={data.get('format') if isinstance(data, dict) else None!r})"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ManifestError(
            f"{path}: format_version {version!r} is not supported (this package reads <= {FORMAT_VERSION}); upgrade pyserini-diffretriever"
        )
    if data.get("kind") not in KINDS:
        raise ManifestError(f"{path}: unknown kind {data.get('kind')!r}")
    if not isinstance(data.get("num_docs"), int) or data["num_docs"] < 0:
        raise ManifestError(f"{path}: num_docs missing or invalid ({data.get('num_docs')!r})")
    if kind is not None:
        accepted = (kind,) if isinstance(kind, str) else tuple(kind)
        if data["kind"] not in accepted:
            raise ManifestError(f"{path}: kind is {data['kind']!r}, expected {' or '.join(map(repr, accepted))}")
    return data

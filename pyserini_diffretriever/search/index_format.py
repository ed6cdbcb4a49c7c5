"""What the searchers expect on disk: manifest location and validation, and the typed errors they raise.

Why: every index folder written by :mod:`pyserini_diffretriever.writers` carries a ``manifest.json`` (for a
Lucene impact index, ``diffretriever-manifest.json`` inside the Lucene folder, where Lucene ignores it). The
searchers read it to pick the searcher, rebuild the matching query encoder and refuse incompatible
encoders; doing that in one place keeps the messages identical everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..layouts import DOCID_FILE, FAISS_INDEX_FILE, INDEX_MANIFEST_NAME, MANIFEST_NAME, OFFSETS_FILE, VECTORS_FILE
from ..writers.manifest import KINDS, ManifestError
from ..writers.manifest import read_manifest as _read_writer_manifest

# the file names are owned by pyserini_diffretriever.layouts and re-exported here for the searchers
__all__ = [
    "DOCID_FILE",
    "FAISS_INDEX_FILE",
    "INDEX_MANIFEST_NAME",
    "KINDS",
    "MANIFEST_NAME",
    "OFFSETS_FILE",
    "VECTORS_FILE",
    "IndexFormatError",
    "IndexMismatchError",
    "read_docids",
    "read_manifest",
    "vectors_fingerprint",
]


class IndexFormatError(ManifestError):
    """An index folder is missing, incomplete, or not in the format this version understands.

    A :class:`~pyserini_diffretriever.writers.manifest.ManifestError`, so one ``except`` catches manifest and
    file problems alike.
    """


class IndexMismatchError(ValueError):
    """A query encoder (or query vector) does not match the index it is used with.

    Attributes
    ----------
    differences : dict
        ``{key: (index_value, encoder_value)}`` for every key that differs.
    """

    def __init__(self, message: str, differences: Mapping[str, tuple[Any, Any]] | None = None) -> None:
        super().__init__(message)
        self.differences = dict(differences or {})


def read_manifest(index_dir: str | Path) -> dict[str, Any]:
    """Read and validate the manifest of an index folder (``manifest.json`` or ``diffretriever-manifest.json``).

    Returns
    -------
    dict
        The manifest; ``kind`` is one of :data:`KINDS` and ``encoder`` is a dict (possibly empty).

    Raises
    ------
    IndexFormatError
        Missing or unreadable manifest, another format, a newer ``format_version``, or an unknown kind.
    """
    try:
        manifest = _read_writer_manifest(index_dir)
    except ManifestError as error:
        raise IndexFormatError(
            f"{error} (plain Pyserini indexes without a manifest open with pyserini's FaissSearcher / "
            "LuceneImpactSearcher directly)"
        ) from error
    encoder = manifest.setdefault("encoder", {})
    if not isinstance(encoder, dict):
        raise IndexFormatError(f"{index_dir}: manifest 'encoder' must be a JSON object of encoder settings")
    return manifest


def read_docids(path: str | Path) -> list[str]:
    """Read a ``docid`` file (one id per line, as pyserini's ``FaissSearcher.load_docids``: ``rstrip()``)."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            return [line.rstrip() for line in handle]
    except OSError as error:
        raise IndexFormatError(f"{path}: cannot read docids ({error})") from error


def vectors_fingerprint(index_dir: str | Path, num_vectors: int, dimension: int) -> dict[str, int]:
    """What derived files (token index, document means) record to detect that ``vectors.npy`` changed."""
    return {
        "num_vectors": int(num_vectors),
        "dimension": int(dimension),
        "vectors_bytes": (Path(index_dir) / VECTORS_FILE).stat().st_size,
    }

"""Shared life cycle of the output writers: open a fresh folder, take batches, write the manifest last.

The writers follow Pyserini's ``RepresentationWriter`` protocol (context manager + ``write(batch_info, fields)``
with ``batch_info["id"]`` and ``batch_info["vector"]``) without importing :mod:`pyserini.encode`, which starts
the JVM in Pyserini 2.3. The manifest is written only when the ``with`` block ends without an exception, so a
folder without ``manifest.json`` is never a finished output (see also :mod:`.atomic`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .manifest import write_manifest

logger = logging.getLogger(__name__)


class WriterError(ValueError):
    """A batch that cannot be written (bad shape, bad value, bad or duplicate id); names the document."""


class VectorWriter:
    """Base of the folder writers; subclasses implement ``_open``, ``write``, ``_close`` and ``_manifest``."""

    kind = ""

    def __init__(
        self,
        directory: str | os.PathLike,
        encoder_settings: Mapping[str, Any] | None = None,
        shard: tuple[int, int] = (0, 1),
        manifest_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.encoder_settings = dict(encoder_settings or {})
        self.shard = (int(shard[0]), int(shard[1]))
        self.manifest_extra = dict(manifest_extra or {})
        self.num_docs = 0
        self._seen: set[str] = set()
        self._entered = False

    def __enter__(self) -> "VectorWriter":
        if self.directory.exists() and any(self.directory.iterdir()):
            raise FileExistsError(f"{self.directory} is not empty; writers only fill fresh folders")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._entered = True
        self._open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        success = exc_type is None
        self._close(success)
        if success:
            manifest = self._manifest()
            write_manifest(self.directory, manifest)
            logger.info("%s: %d documents (%s)", self.directory, self.num_docs, self.kind)

    def write(self, batch_info: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self, success: bool) -> None:
        raise NotImplementedError

    def _manifest(self) -> dict[str, Any]:
        raise NotImplementedError

    def _check_ids(self, batch_info: Mapping[str, Any]) -> list[str]:
        """The batch's ids, each a non-empty one-line string never written before."""
        if not self._entered:
            raise RuntimeError(f"{type(self).__name__} must be used as a context manager (with ... as writer)")
        ids = [str(docid) for docid in batch_info["id"]]
        if not ids:
            raise WriterError("empty batch")
        for docid in ids:
            if not docid or "\n" in docid or "\r" in docid or docid != docid.rstrip():
                raise WriterError(f"document id {docid!r} is empty, contains a line break or ends with whitespace")
            if docid in self._seen:
                raise WriterError(f"duplicate document id {docid!r}")
            self._seen.add(docid)
        return ids

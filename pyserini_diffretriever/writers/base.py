"""Shared life cycle of the output writers: append-only data files, checkpoints, and the manifest last.

The writers follow Pyserini's ``RepresentationWriter`` protocol (context manager + ``write(batch_info, fields)``
with ``batch_info["id"]`` and ``batch_info["vector"]``) without importing :mod:`pyserini.encode`, which starts
the JVM in Pyserini 2.3. The manifest is written only when the ``with`` block ends without an exception, so a
folder without ``manifest.json`` is never a finished output (see also :mod:`.atomic`).

Why append-only files and checkpoints: a long encode must survive being killed. Every writer only *appends* to
its data files while documents arrive, and derives whatever needs the full picture (the FAISS ``index``, the
``.npy`` header, ``offsets.npy``) in :meth:`VectorWriter.finish`. :meth:`VectorWriter.checkpoint` flushes and
fsyncs the data files and returns a small JSON state (file lengths and counters); :meth:`VectorWriter.open`
with that state truncates every file to its committed length, deletes files created after it, and continues
as if the run had never stopped. The resumed output is byte-identical to an uninterrupted one as long as the
caller resumes at the same document (see :mod:`.checkpoint`).

Life cycle::

    writer.open(state=None)      # fresh (empty folder) or resumed from a checkpoint() state
    writer.write(batch) ...      # append
    writer.record_skipped(entry) # a corpus record left out in lenient mode (skipped-records.jsonl)
    state = writer.checkpoint()  # durable; JSON-serialisable
    manifest = writer.finish()   # derived files + manifest.json (idempotent from the same state)
    writer.cleanup()             # delete temporary files (after finish() was committed)

``with writer:`` runs ``open()`` and, on success, ``finish()`` + ``cleanup()`` (on error: ``abort()``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..layouts import SKIPPED_REPORT_NAME
from . import _files
from .manifest import write_manifest

logger = logging.getLogger(__name__)


class WriterError(ValueError):
    """A batch that cannot be written (bad shape, bad value, bad or duplicate id); names the document."""


class CheckpointStateError(WriterError):
    """A folder that does not match the checkpoint it should be resumed from (a file is missing or shorter)."""


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make created/renamed entries of ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


class VectorWriter:
    """Base of the folder writers.

    Subclasses implement ``_open`` (create the data files with :meth:`_append_file`), ``write``, ``_reopen``
    (reopen them after a resume with :meth:`_reopen_file`), ``_state``/``_restore`` (their counters),
    ``_committed_ids``, ``_finish`` (derived files) and ``_manifest``; ``TEMP_FILES`` lists the files that
    :meth:`cleanup` deletes once the derived files exist.
    """

    kind = ""
    TEMP_FILES: tuple[str, ...] = ()
    EMPTY_PROBLEM = "no documents were written"

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
        self.num_skipped_records = 0
        self.skipped_by_problem: dict[str, int] = {}
        self._seen: set[str] = set()
        self._entered = False
        self._open_files: dict[str, BinaryIO] = {}  # relative path -> handle being appended to
        self._closed_files: dict[str, int] = {}  # relative path -> final length of a file no longer appended

    # -- context manager ----------------------------------------------------------------------------------------
    def __enter__(self) -> VectorWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.finish()
        except BaseException:
            self.abort()
            raise
        self.cleanup()

    # -- life cycle -----------------------------------------------------------------------------------------------
    def open(self, state: Mapping[str, Any] | None = None, preserve: Iterable[str] = ()) -> VectorWriter:
        """Start a fresh folder (``state=None``; it must be empty) or resume from a :meth:`checkpoint` state.

        Resuming deletes every file of the folder that the state does not list, except the relative paths in
        ``preserve`` (e.g. the caller's own progress file).
        """
        if state is None:
            if self.directory.exists() and any(self.directory.iterdir()):
                raise FileExistsError(f"{self.directory} is not empty; writers only fill fresh folders")
            self.directory.mkdir(parents=True, exist_ok=True)
            self._open()
        else:
            self._restore_files(state["files"], frozenset(preserve))
            self.num_docs = int(state["num_docs"])
            self.num_skipped_records = int(state.get("num_skipped_records", 0))
            self.skipped_by_problem = dict(state.get("skipped_by_problem", {}))
            self._restore(state)
            self._reopen()
            if SKIPPED_REPORT_NAME in self._closed_files:
                self._reopen_file(SKIPPED_REPORT_NAME)
            self._seen = set(self._committed_ids())
        self._entered = True
        return self

    def checkpoint(self) -> dict[str, Any]:
        """Flush and fsync every data file; return the JSON state :meth:`open` resumes from."""
        self._require_open()
        files = dict(self._closed_files)
        for relative, handle in self._open_files.items():
            handle.flush()
            os.fsync(handle.fileno())
            files[relative] = handle.tell()
        for folder in sorted({(self.directory / relative).parent for relative in files} | {self.directory}):
            fsync_dir(folder)
        return {
            "num_docs": self.num_docs,
            "num_skipped_records": self.num_skipped_records,
            "skipped_by_problem": dict(sorted(self.skipped_by_problem.items())),
            "files": dict(sorted(files.items())),
            **self._state(),
        }

    def finish(self) -> dict[str, Any]:
        """Close the data files, write the derived files and ``manifest.json``; return the manifest."""
        self._require_open()
        self._close_all()
        if self.num_docs == 0:
            raise WriterError(f"{self.directory}: {self.EMPTY_PROBLEM}")
        self._finish()
        manifest = self._manifest()
        manifest["num_skipped_records"] = self.num_skipped_records
        if self.num_skipped_records:
            manifest["skipped_by_problem"] = dict(sorted(self.skipped_by_problem.items()))
            manifest["skipped_records_file"] = SKIPPED_REPORT_NAME
        write_manifest(self.directory, manifest)
        logger.info("%s: %d documents (%s)", self.directory, self.num_docs, self.kind)
        return manifest

    def cleanup(self) -> None:
        """Delete the temporary files (only after :meth:`finish`)."""
        for name in self.TEMP_FILES:
            (self.directory / name).unlink(missing_ok=True)

    def abort(self) -> None:
        """Close the data files without finishing (what was appended stays for a resume)."""
        for handle in self._open_files.values():
            try:
                handle.close()
            except OSError:  # e.g. the flush of a full disk; the checkpoint decides what counts
                pass
        self._open_files.clear()

    # -- writing ----------------------------------------------------------------------------------------------------
    def write(self, batch_info: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        raise NotImplementedError

    def record_skipped(self, entry: Any) -> None:
        """List a corpus record left out in lenient mode in ``skipped-records.jsonl``.

        ``entry`` is a :class:`~pyserini_diffretriever.corpus.SkippedRecord` (or the dict of one report line).
        """
        self._require_open()
        line = entry if isinstance(entry, Mapping) else entry.as_dict()
        handle = self._open_files.get(SKIPPED_REPORT_NAME) or self._append_file(SKIPPED_REPORT_NAME)
        handle.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
        self.num_skipped_records += 1
        kind = str(line.get("kind") or "unknown")
        self.skipped_by_problem[kind] = self.skipped_by_problem.get(kind, 0) + 1

    def copy_skipped_report(self, folder: str | os.PathLike) -> int:
        """Append another folder's ``skipped-records.jsonl`` (merging shards); return the lines copied."""
        report = Path(folder) / SKIPPED_REPORT_NAME
        if not report.is_file():
            return 0
        lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines() if line.strip()]
        for line in lines:
            self.record_skipped(line)
        return len(lines)

    # -- files ----------------------------------------------------------------------------------------------------
    def _append_file(self, relative: str) -> BinaryIO:
        """Create a data file (relative to the folder) that this writer appends to."""
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = _files.open_output(path, "w+b")
        self._open_files[relative] = handle
        return handle

    def _reopen_file(self, relative: str) -> BinaryIO:
        """Reopen a committed data file for appending (after :meth:`_restore_files` truncated it)."""
        self._closed_files.pop(relative, None)
        handle = _files.open_output(self.directory / relative, "r+b")
        handle.seek(0, os.SEEK_END)
        self._open_files[relative] = handle
        return handle

    def _close_file(self, relative: str) -> None:
        """Stop appending to a data file (its length stays part of every later checkpoint)."""
        handle = self._open_files.pop(relative)
        handle.flush()
        self._closed_files[relative] = handle.tell()
        handle.close()

    def _close_all(self) -> None:
        for relative in list(self._open_files):
            self._close_file(relative)

    def _restore_files(self, files: Mapping[str, int], preserve: frozenset[str] = frozenset()) -> None:
        """Truncate committed files to their lengths and delete everything written after the checkpoint."""
        if not self.directory.is_dir():
            raise CheckpointStateError(f"{self.directory}: folder of the unfinished run is missing")
        for relative, length in files.items():
            path = self.directory / relative
            size = path.stat().st_size if path.is_file() else None
            if size is None or size < length:
                found = "missing" if size is None else f"{size} bytes"
                raise CheckpointStateError(
                    f"{path}: {found}, but the checkpoint committed {length} bytes; the unfinished output is damaged"
                )
        for path in sorted(self.directory.rglob("*"), reverse=True):
            relative = path.relative_to(self.directory).as_posix()
            if path.is_file() and relative not in files and relative not in preserve:
                path.unlink()  # written after the last checkpoint (a new part, a temporary index, a manifest)
        for relative, length in files.items():
            os.truncate(self.directory / relative, length)
            self._closed_files[relative] = int(length)

    def _require_open(self) -> None:
        if not self._entered:
            raise RuntimeError(
                f"{type(self).__name__} must be used as a context manager (with ... as writer) or "
                "opened with writer.open()"
            )

    def _check_ids(self, batch_info: Mapping[str, Any]) -> list[str]:
        """The batch's ids, each a non-empty one-line string never written before."""
        self._require_open()
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

    # -- subclass hooks ---------------------------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _reopen(self) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, state: Mapping[str, Any]) -> None:
        pass

    def _committed_ids(self) -> Iterable[str]:
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def _manifest(self) -> dict[str, Any]:
        raise NotImplementedError


def read_id_lines(path: str | os.PathLike) -> list[str]:
    """The ids of a one-id-per-line file written by a writer (``\\n``-terminated UTF-8)."""
    path = Path(path)
    if not path.is_file():
        return []
    return path.read_bytes().decode("utf-8").splitlines()

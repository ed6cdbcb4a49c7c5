"""Resumable, all-or-nothing output folders: ``OUT.partial`` + ``progress.json``, renamed to ``OUT`` when done.

Why: encoding a large corpus takes hours, and a run can be killed at any moment (SIGKILL, OOM killer, a
pre-empted GPU node, a full disk). Rerunning the same command must continue where the run stopped and give
exactly the files an uninterrupted run gives, and nothing may look finished before it is.

How
---
* The work happens in ``OUT.partial`` (a name derived from ``OUT`` only, so a rerun finds it). ``OUT`` appears
  in one ``rename`` after everything is written, so ``OUT`` either does not exist or is complete.
* ``OUT.partial.lock`` is held with ``flock`` while a run works (the kernel releases it when the process dies,
  SIGKILL included) and holds its pid; a second run of the same output is refused instead of interleaving.
* The writers only append while documents arrive. At every commit (a batch boundary) the caller fsyncs them
  and :meth:`ResumableOutput.commit` atomically replaces ``OUT.partial/progress.json`` with the writers' file
  lengths and counters, the number of corpus records done, a SHA-256 of those records' bytes, and the run's
  *settings* (everything that changes the output bytes).
* A rerun compares its settings with the committed ones and refuses, naming every difference, if they differ;
  otherwise it truncates the files to their committed lengths, checks the corpus prefix hash, skips the records
  already done and continues. Because commits happen only at batch boundaries, the resumed batches are the
  batches of an uninterrupted run, so the output is byte-identical (``manifest.json``'s ``created`` time stamp
  aside, which ``SOURCE_DATE_EPOCH`` fixes).
* A failure keeps ``OUT.partial`` when something was committed (rerun to resume, or pass ``restart=True`` to
  discard it) and deletes it otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..layouts import PROGRESS_NAME
from . import _files
from .atomic import check_output_free
from .base import fsync_dir

try:  # POSIX; elsewhere the lock degrades to a warning
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

PROGRESS_FORMAT = "pyserini-diffretriever-progress"
PROGRESS_VERSION = 1


class ResumeError(RuntimeError):
    """An unfinished output that cannot be resumed by this run (other settings, changed corpus, damage)."""


class OutputLockedError(ResumeError):
    """Another live process is writing the same output."""


def partial_path(final: str | os.PathLike) -> Path:
    """``OUT.partial``: where a run writing ``OUT`` works (stable, so that a rerun finds it)."""
    final = Path(final)
    return final.with_name(f"{final.name}.partial")


def lock_path(final: str | os.PathLike) -> Path:
    """``OUT.partial.lock``: the lock file of a run writing ``OUT``."""
    final = Path(final)
    return final.with_name(f"{final.name}.partial.lock")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat or {prefix: {}}
    return {prefix: value}


def settings_differences(committed: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted.key: (committed, current)}`` for every setting that differs (missing keys show as ``None``)."""
    old, new = _flatten(committed), _flatten(json.loads(json.dumps(current)))
    return {
        key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)
    }


class ResumableOutput:
    """Context manager around one resumable output folder (see the module docstring).

    Parameters
    ----------
    final : str or PathLike
        The output folder ``OUT``.
    settings : mapping
        JSON-serialisable description of everything that changes the output bytes; a rerun must pass equal
        settings to resume.
    overwrite : bool
        Replace an existing ``OUT`` once the new output is complete.
    restart : bool
        Discard an unfinished ``OUT.partial`` instead of resuming it.

    Attributes
    ----------
    partial : Path
        ``OUT.partial``, where the caller writes.
    progress : dict or None
        The last committed state of an unfinished run being resumed (what was passed to :meth:`commit`),
        ``None`` for a fresh run.

    Raises
    ------
    OutputExistsError
        ``OUT`` exists and ``overwrite`` is false.
    OutputLockedError
        Another process holds ``OUT.partial.lock``.
    ResumeError
        ``OUT.partial`` was started with other settings, or its ``progress.json`` is unreadable.
    """

    def __init__(
        self, final: str | os.PathLike, settings: Mapping[str, Any], *, overwrite: bool = False, restart: bool = False
    ) -> None:
        self.final = Path(final)
        self.partial = partial_path(final)
        self.lock_path = lock_path(final)
        self.settings = json.loads(json.dumps(settings))  # plain JSON types, as they will be read back
        self.overwrite = overwrite
        self.restart = restart
        self.progress: dict[str, Any] | None = None
        self._lock_fd: int | None = None
        self._finalized = False

    # -- context manager ------------------------------------------------------------------------------------------
    def __enter__(self) -> ResumableOutput:
        check_output_free(self.final, self.overwrite)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._prepare()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None and not self._finalized:
                if (self.partial / PROGRESS_NAME).is_file():
                    logger.warning(
                        "unfinished output kept in %s (%s); rerun the same command to resume, or restart to discard it",
                        self.partial,
                        self.describe_progress(),
                    )
                else:
                    shutil.rmtree(self.partial, ignore_errors=True)
        finally:
            self._unlock()

    # -- state ------------------------------------------------------------------------------------------------------
    def describe_progress(self) -> str:
        """``"N records committed"`` for log messages."""
        try:
            data = json.loads((self.partial / PROGRESS_NAME).read_text(encoding="utf-8"))
            return f"{data['state'].get('records_done', 0)} records committed"
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return "progress unknown"

    def commit(self, state: Mapping[str, Any]) -> None:
        """Durably record ``state`` (JSON-serialisable; the data files must already be fsynced)."""
        data = {
            "format": PROGRESS_FORMAT,
            "format_version": PROGRESS_VERSION,
            "settings": self.settings,
            "state": dict(state),
        }
        text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
        tmp = self.partial / f".{PROGRESS_NAME}.tmp"
        with _files.open_output(tmp, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.partial / PROGRESS_NAME)
        fsync_dir(self.partial)

    def finalize(self) -> Path:
        """Rename ``OUT.partial`` to ``OUT`` (replacing it when ``overwrite``); return ``OUT``.

        The progress file is removed first; were the run killed between that and the rename, a rerun finds no
        progress and starts over (correct, only slower).
        """
        (self.partial / PROGRESS_NAME).unlink(missing_ok=True)
        (self.partial / f".{PROGRESS_NAME}.tmp").unlink(missing_ok=True)
        if self.final.exists():
            if not self.overwrite:
                raise ResumeError(
                    f"{self.final} appeared while this run was writing; the finished output stays in {self.partial}"
                )
            old = self.final.with_name(f"{self.final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            os.replace(self.final, old)
            os.replace(self.partial, self.final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.partial, self.final)
        fsync_dir(self.final.parent)
        self._finalized = True
        logger.info("Wrote %s", self.final)
        return self.final

    # -- internals --------------------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        if not self.partial.exists():
            self.partial.mkdir()
            return
        if not self.partial.is_dir():
            raise ResumeError(f"{self.partial} exists and is not a folder; remove it")
        if self.restart:
            logger.info("discarding unfinished output %s (restart requested)", self.partial)
            shutil.rmtree(self.partial)
            self.partial.mkdir()
            return
        progress_file = self.partial / PROGRESS_NAME
        if not progress_file.is_file():  # killed before its first commit: nothing worth keeping
            logger.info("unfinished output %s has no committed work; starting over", self.partial)
            shutil.rmtree(self.partial)
            self.partial.mkdir()
            return
        try:
            data = json.loads(progress_file.read_text(encoding="utf-8"))
            if data.get("format") != PROGRESS_FORMAT or not isinstance(data.get("state"), dict):
                raise ValueError(f"format is {data.get('format')!r}")
            if data.get("format_version") != PROGRESS_VERSION:
                raise ValueError(
                    f"format_version {data.get('format_version')!r}, this version reads {PROGRESS_VERSION}"
                )
        except (OSError, ValueError, AttributeError) as error:
            raise ResumeError(
                f"{progress_file}: cannot read the progress of the unfinished run ({error}); "
                "restart to discard it (--restart)"
            ) from None
        differences = settings_differences(data.get("settings", {}), self.settings)
        if differences:
            shown = "; ".join(
                f"{key}: {old!r} (unfinished run) vs {new!r} (this run)"
                for key, (old, new) in list(differences.items())[:8]
            )
            more = f"; and {len(differences) - 8} more" if len(differences) > 8 else ""
            raise ResumeError(
                f"{self.partial} was started with other settings, so it cannot be resumed: {shown}"
                f"{more}. Rerun with the original settings to resume, or restart to discard it "
                "(--restart)"
            )
        self.progress = data["state"]
        logger.info("resuming unfinished output %s (%s)", self.partial, self.describe_progress())

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            logger.warning("no file locking on this platform; do not run two encodes of %s at once", self.final)
            return
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
                os.close(fd)
                raise OutputLockedError(
                    f"{self.final} is being written by another run (pid/host {holder}; lock "
                    f"{self.lock_path}); wait for it to finish or stop it"
                ) from None
            try:  # the holder may have unlinked the lock between our open and flock: lock the live file only
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is None:
            return
        try:
            self.lock_path.unlink(missing_ok=True)
        finally:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

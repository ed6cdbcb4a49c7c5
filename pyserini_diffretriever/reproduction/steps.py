"""Step manifests: how a rerun recognises finished work and does not redo it.

Every step of a reproduction (prepare a dataset, index, encode, search, fuse, evaluate) writes one small JSON
manifest, ``WORK/steps/<dataset>/<owner>/<step>.json``, when it starts (``"status": "started"``) and again when it
has finished (``"done"``, with its wall time and results such as metrics). A step is skipped on a rerun when its
manifest says ``done``, its ``key`` (everything that decides the output: command, settings, input fingerprints)
is unchanged, and its outputs still exist. A step whose key changed is redone after its old outputs (and any
``.partial`` leftovers) are removed, and the log names the keys that changed. A step that was started but not
finished is simply run again: the encoder resumes from its own checkpoint (``OUT.partial``), the other steps are
short and start afresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["StepFailedError", "StepLog", "StepRecord", "WorkFolderLockedError", "lock_work_folder"]

STEPS_DIR = "steps"
LOCK_FILE = ".reproduce.lock"


class WorkFolderLockedError(RuntimeError):
    """Another run holds the work folder (two runs would write the same steps)."""


@contextlib.contextmanager
def lock_work_folder(work: Path) -> Iterator[None]:
    """Hold ``work/.reproduce.lock`` with ``flock`` while a run works; the kernel releases it if the run dies.

    The file is never removed (so there is no window in which two runs lock two different files); it holds the
    pid and host of the last run, for the error message.
    """
    work.mkdir(parents=True, exist_ok=True)
    fd = os.open(work / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
            raise WorkFolderLockedError(
                f"{work} is in use by another reproduce run (pid/host {holder}); wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


class StepFailedError(RuntimeError):
    """A step's command failed; the message names the step and says that a rerun resumes."""


@dataclass
class StepRecord:
    """What a step's manifest holds."""

    step: str
    key: dict[str, Any]
    outputs: list[str]
    status: str = "started"
    seconds: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    finished: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "status": self.status,
            "key": self.key,
            "outputs": self.outputs,
            "seconds": self.seconds,
            "result": self.result,
            "finished": self.finished,
        }


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


class StepLog:
    """The step manifests of one work folder.

    Parameters
    ----------
    work : Path
        The reproduction's work folder; manifests go to ``work/steps``.
    """

    def __init__(self, work: Path) -> None:
        self.work = Path(work)
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def path(self, step: str) -> Path:
        """Manifest file of ``step`` (``dataset/owner/name``)."""
        return self.work / STEPS_DIR / f"{step}.json"

    def read(self, step: str) -> StepRecord | None:
        """The step's manifest, or None when there is none (or it is unreadable: then the step is redone)."""
        path = self.path(step)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return StepRecord(
                step=data["step"],
                key=data["key"],
                outputs=list(data["outputs"]),
                status=data["status"],
                seconds=data.get("seconds"),
                result=data.get("result") or {},
                finished=data.get("finished"),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("step manifest %s is unreadable (%s); the step is redone", path, error)
            return None

    def _write(self, record: StepRecord) -> None:
        path = self.path(record.step)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def finished(self, step: str, key: Mapping[str, Any], outputs: Sequence[Path]) -> StepRecord | None:
        """The manifest of ``step`` if it is done with this ``key`` and its outputs exist, else None."""
        record = self.read(step)
        if record is None or record.status != "done" or record.key != dict(key):
            return None
        if not all(Path(out).exists() for out in outputs):
            logger.warning("step %s: an output is missing (%s); redoing it", step, ", ".join(map(str, outputs)))
            return None
        return record

    def run(
        self,
        step: str,
        key: Mapping[str, Any],
        outputs: Sequence[Path],
        action: Callable[[], Mapping[str, Any] | None],
        cleanup: Sequence[Path] = (),
    ) -> StepRecord:
        """Run ``action`` unless the step is finished; record its time and result.

        ``action`` returns the step's result (metrics, counts) or None. It must create ``outputs``. When a previous
        manifest has another key, the old outputs, the ``cleanup`` paths (e.g. the folder holding the outputs) and
        their ``.partial*`` leftovers are removed first.
        """
        done = self.finished(step, key, outputs)
        if done is not None:
            logger.info("step %s: done already (%s), not redone", step, self.path(step))
            self.skipped.append(step)
            return done
        previous = self.read(step)
        if previous is not None and previous.key != dict(key):
            logger.warning(
                "step %s: settings changed since the last run (%s); redoing it",
                step,
                ", ".join(_differences(previous.key, dict(key))),
            )
            for out in [*outputs, *cleanup]:
                _remove(Path(out))
                for leftover in Path(out).parent.glob(f"{Path(out).name}.partial*"):
                    _remove(leftover)
        record = StepRecord(step=step, key=dict(key), outputs=[str(out) for out in outputs])
        self._write(record)
        started = time.perf_counter()
        result = action() or {}
        record.seconds = time.perf_counter() - started
        missing = [str(out) for out in outputs if not Path(out).exists()]
        if missing:
            raise StepFailedError(f"step {step} finished without writing {', '.join(missing)}")
        record.status, record.result = "done", dict(result)
        record.finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._write(record)
        self.ran.append(step)
        logger.info("step %s: done in %.1f s", step, record.seconds)
        return record

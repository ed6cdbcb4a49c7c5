"""Shared pieces of the fault-injection suite (also used by ``benchmarks/fault_injection.py``).

* :class:`FakeEncoder`: deterministic, per-text outputs for all three representations (fast, no torch).
* :class:`IOFaults`: counts this process's write-side I/O events (every ``write`` on a handle from
  :func:`pyserini_diffretriever.writers._files.open_output`, ``os.fsync``, ``os.replace``, ``os.truncate``,
  ``os.unlink``, ``shutil.rmtree``) and, at a chosen event, kills the process with SIGKILL (a ``write`` is
  torn first: half its bytes reach the file), or simulates a full disk (``OSError(ENOSPC)`` once a byte budget
  is used up).
* :func:`compare_trees`: byte-for-byte comparison of two output folders.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).resolve().with_name("encode_child.py")

TOPICS = [
    ("Boundary layer transition", "experimental study of transition in the boundary layer of a flat plate"),
    ("Supersonic wing lift", "lift and drag of thin wings at supersonic speeds"),
    ("Heat transfer in hypersonic flow", "heat transfer to a blunt body in hypersonic flow"),
    ("Shock wave interaction", "interaction of a shock wave with a laminar boundary layer"),
    ("Buckling of cylinders", "buckling of thin cylindrical shells under axial compression"),
]


def cranfield_like(n: int) -> list[dict]:
    """``n`` small aeronautics abstracts in BEIR layout (``_id``, ``title``, ``text``), of varied length."""
    docs = []
    for i in range(n):
        title, text = TOPICS[i % len(TOPICS)]
        docs.append(
            {
                "_id": f"cran{i + 1}",
                "title": f"{title} {i // len(TOPICS) + 1}",
                "text": f"{text}; case {i} with mach number {i % 7 + 1}." + " more detail" * (i % 6),
            }
        )
    return docs


def write_corpus(path: Path, lines: Sequence[Any]) -> Path:
    """Write records (dicts are JSON-encoded, str and bytes written as they are) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            handle.write((line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")) + b"\n")
    return path


@dataclass
class FakeBatch:
    dense: np.ndarray
    multi: list = field(default_factory=list)
    impact: list = field(default_factory=list)


class FakeEncoder:
    """Shaped like DiffRetrieverDocumentEncoder; each text's vectors depend on that text only."""

    def __init__(self, dim: int = 8, fail_after: int | None = None) -> None:
        self.dim, self.fail_after = dim, fail_after
        self.calls: list[int] = []

    def settings(self) -> dict:
        return {"backbone": "fake", "representation": "dense", "k": 3, "quantization": 100.0, "hidden_size": self.dim}

    def _one(self, text: str):
        seed = zlib.crc32(text.encode("utf-8", "surrogatepass"))
        multi = np.random.default_rng(seed).standard_normal((1 + seed % 3, self.dim)).astype(np.float32)
        words = [w.strip(".;,").lower() for w in text.split()]
        impact = {w: 10 * words.count(w) for w in words if w}
        return multi.mean(axis=0), multi, impact

    def encode_all(self, texts, titles=None, max_length=None, fp16=False):
        self.calls.append(len(texts))
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            raise RuntimeError("encoder exploded")
        joined = [f"{t}. {x}" if t else x for t, x in zip(titles or [None] * len(texts), texts)]
        outs = [self._one(text) for text in joined]
        return FakeBatch(np.stack([o[0] for o in outs]), [o[1] for o in outs], [o[2] for o in outs])


# --- fault injection ---------------------------------------------------------------------------------------
class _FaultyFile:
    """A writable binary handle whose writes are I/O events (and may hit a full disk)."""

    def __init__(self, handle, faults: IOFaults, path: str) -> None:
        self._handle, self._faults, self._path = handle, faults, path

    def write(self, data) -> int:
        data = bytes(data)
        faults = self._faults
        faults.writes.append((self._path, faults.bytes_written))
        if faults.enospc_after is not None and faults.bytes_written + len(data) > faults.enospc_after:
            room = max(0, faults.enospc_after - faults.bytes_written)
            self._handle.write(data[:room])
            faults.bytes_written += room
            faults.enospc_hits.append(self._path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)
        if faults.next_event_kills():
            self._handle.write(data[: len(data) // 2])  # a torn write: what the kernel had when the process died
            self._handle.flush()
            faults.event(f"write {self._path}")
        else:
            faults.event(f"write {self._path}")
        faults.bytes_written += len(data)
        return self._handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _FaultyFile:
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


class IOFaults:
    """Count write-side I/O events; SIGKILL this process at event ``kill_at``; ENOSPC after ``enospc_after`` bytes.

    ``install(setattr)`` patches the functions (pass ``monkeypatch.setattr`` in a test; the default patches for
    the rest of the process, which is what a child about to be killed wants).

    ``sync=False`` keeps every ``fsync`` as an event (a kill point) but skips the system call: a SIGKILLed process
    loses nothing the kernel's page cache already holds, so for kill trials syncing only costs time (~200 calls of
    a few ms per fake-encoder run). Power loss, which ``fsync`` guards against, is not what they simulate.
    """

    def __init__(
        self,
        kill_at: int | None = None,
        enospc_after: int | None = None,
        label_file: str | os.PathLike | None = None,
        trace_file: str | os.PathLike | None = None,
        sync: bool = True,
    ) -> None:
        self.kill_at = kill_at
        self.sync = sync
        self.enospc_after = enospc_after
        self.label_file = label_file
        self.trace_fd = (
            None
            if trace_file is None
            else _ORIGINAL["os.open"](str(trace_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        )
        self.events = 0
        self.bytes_written = 0
        self.enospc_hits: list[str] = []
        self.writes: list[tuple[str, int]] = []  # (path, bytes written before this write) of every write

    def next_event_kills(self) -> bool:
        return self.kill_at is not None and self.events + 1 == self.kill_at

    def event(self, label: str) -> None:
        self.events += 1
        if self.trace_fd is not None:
            _ORIGINAL["os.write"](self.trace_fd, f"{self.events}\t{label}\n".encode())
        if self.kill_at is not None and self.events == self.kill_at:
            if self.label_file:
                fd = _ORIGINAL["os.open"](str(self.label_file), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                _ORIGINAL["os.write"](fd, f"{self.events}\t{label}\n".encode())
                _ORIGINAL["os.close"](fd)
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self, setattr: Callable[[Any, str, Any], None] = setattr) -> IOFaults:
        from pyserini_diffretriever.writers import _files

        original_open = _files.open_output

        def open_output(path, mode="wb"):
            return _FaultyFile(original_open(path, mode), self, str(path))

        def wrap(name: str, function: Callable) -> Callable:
            def wrapped(*args, **kwargs):
                first = args[0] if args else ""
                target = args[1] if name == "replace" and len(args) > 1 else first
                self.event(f"{name} {target}")
                if self.enospc_after is not None and name == "fsync" and self.bytes_written >= self.enospc_after:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "fsync")
                if name == "fsync" and not self.sync:
                    return None
                return function(*args, **kwargs)

            return wrapped

        setattr(_files, "open_output", open_output)
        for name in ("fsync", "replace", "truncate", "unlink"):
            setattr(os, name, wrap(name, getattr(os, name)))
        setattr(shutil, "rmtree", wrap("rmtree", shutil.rmtree))
        return self


_ORIGINAL = {"os.open": os.open, "os.write": os.write, "os.close": os.close}


# --- comparing outputs -------------------------------------------------------------------------------------
def tree_files(folder: Path) -> dict[str, bytes]:
    """``{relative path: bytes}`` of every file under ``folder``."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def compare_trees(left: Path, right: Path) -> list[str]:
    """Differences between two folders, file by file and byte for byte (empty: identical)."""
    a, b = tree_files(left), tree_files(right)
    problems = [f"only in {left.name}: {name}" for name in sorted(a.keys() - b.keys())]
    problems += [f"only in {right.name}: {name}" for name in sorted(b.keys() - a.keys())]
    for name in sorted(a.keys() & b.keys()):
        if a[name] != b[name]:
            first = next(
                (i for i, (x, y) in enumerate(zip(a[name], b[name])) if x != y), min(len(a[name]), len(b[name]))
            )
            problems.append(f"{name}: {len(a[name])} vs {len(b[name])} bytes, first difference at byte {first}")
    return problems


def siblings(out: Path) -> list[str]:
    """Names next to ``out`` that belong to it (``OUT``, ``OUT.partial``, ``OUT.partial.lock``, ...)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name == out.name or p.name.startswith(out.name + "."))


# --- child processes ---------------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        SOURCE_DATE_EPOCH="1700000000",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    env.update(extra)
    return env


def encode_module_command(argv: Sequence[str]) -> list[str]:
    """The real command line: ``python -m pyserini_diffretriever.encode ARGV``."""
    return [sys.executable, "-m", "pyserini_diffretriever.encode", *argv]


def encode_argv(
    corpus: Path,
    out: Path,
    encoder: str = "fake",
    representations: Sequence[str] = ("dense", "multi", "impact"),
    batch_size: int = 3,
    checkpoint_every: int = 1,
    sort_window: int = 1,
    extra_input: Sequence[str] = (),
    extra_encoder: Sequence[str] = (),
    extra_output: Sequence[str] = (),
) -> list[str]:
    """Arguments of ``python -m pyserini_diffretriever.encode`` for the fault-injection runs."""
    return [
        "input",
        "--corpus",
        str(corpus),
        "--fields",
        "title",
        "text",
        *extra_input,
        "encoder",
        "--encoder",
        encoder,
        "--representation",
        *representations,
        "--batch-size",
        str(batch_size),
        "--sort-window",  # 1: a commit after every batch (FakeEncoder cannot sort by length anyway)
        str(sort_window),
        *extra_encoder,
        "output",
        "--embeddings",
        str(out),
        "--no-progress",
        "--records-per-file",
        "7",
        "--checkpoint-every",
        str(checkpoint_every),
        *extra_output,
    ]


@dataclass
class ChildResult:
    returncode: int
    events: int | None  # I/O events of a run that finished (None when killed)
    kill_label: str | None  # what the process was doing when it was killed at an event
    stderr: str
    trace: list[str]  # every event "N<TAB>label" when traced


def run_child(
    argv: Sequence[str],
    workdir: Path,
    *,
    fake: bool = True,
    kill_at: int | None = None,
    trace: bool = False,
    timeout: float = 300,
) -> ChildResult:
    """Run ``encode_child.py`` (the encode CLI, optionally with :class:`FakeEncoder`) to its end or its kill."""
    label_file, count_file, trace_file = (
        workdir / "kill-label.txt",
        workdir / "event-count.txt",
        workdir / "event-trace.txt",
    )
    for path in (label_file, count_file, trace_file):
        path.unlink(missing_ok=True)
    command = [sys.executable, str(CHILD), "--count-file", str(count_file), "--label-file", str(label_file)]
    if fake:
        command.append("--fake")
    if kill_at is not None:
        command += ["--kill-at", str(kill_at)]
    if trace:
        command += ["--trace-file", str(trace_file)]
    done = subprocess.run([*command, "--", *argv], capture_output=True, text=True, env=child_env(), timeout=timeout)
    events = int(count_file.read_text()) if count_file.is_file() else None
    label = label_file.read_text().strip() if label_file.is_file() else None
    lines = trace_file.read_text().splitlines() if trace_file.is_file() else []
    return ChildResult(done.returncode, events, label, done.stderr, lines)


def kill_after(command: Sequence[str], out: Path, delay: float | None, timeout: float = 600) -> tuple[int, float]:
    """Start ``command``; once ``OUT.partial`` exists wait ``delay`` seconds and SIGKILL it (``None``: never).

    Returns ``(returncode, seconds from OUT.partial appearing to the kill, or to OUT appearing)``; a run that
    ended before the kill returns its own status.
    """
    delay = float("inf") if delay is None else delay
    partial = out.with_name(out.name + ".partial")
    process = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    try:
        deadline = time.monotonic() + timeout
        while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        started = time.monotonic()
        elapsed = None
        while process.poll() is None and time.monotonic() - started < delay:
            if elapsed is None and out.exists():
                elapsed = time.monotonic() - started
            time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            elapsed = time.monotonic() - started
        process.wait(timeout=60)
        return process.returncode, elapsed if elapsed is not None else time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

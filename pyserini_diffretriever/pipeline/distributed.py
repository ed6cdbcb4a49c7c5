"""Encoding on a Ray cluster: many model replicas, the same output bytes as one process.

The driver (this process) reads the corpus exactly as :func:`~.encoding.encode_corpus` does and groups the good
records into the same length-sorting windows. Whole windows form numbered *blocks* (``block_size`` records,
rounded up to whole windows, so a window never spans a block or a commit); each block goes to one of ``workers``
Ray actors (:class:`BlockEncoder`), each holding one loaded model, which sorts every window by length into
batches exactly as one process does, and comes back as the windows' representations in corpus order. The driver hands them to the usual writers in corpus
order, so writers, manifests, checkpoints and resume are those of the single-process run and the folders are
byte-identical to it (only the manifests' ``distributed`` record of the workers is added).

Faults:

* a worker process that dies (SIGKILL, a lost node) is restarted by Ray and its blocks are retried
  (``max_restarts`` / ``max_task_retries``); a block's result is written once, in order, so a retry cannot
  duplicate it (Ray's own write paths are not exactly-once);
* progress is committed after every block written, atomically (:class:`~pyserini_diffretriever.writers.ResumableOutput`);
  a block that finishes before the blocks ahead of it is *spilled* atomically to ``OUT.ray-blocks/`` (write a
  temporary file, fsync, rename). A rerun of the same command after the driver is killed resumes from the last
  commit and takes spilled blocks from disk, so no finished block is computed twice;
* a worker that runs out of memory is reported with its block, record range and batch size, and a hint.

Ray is an optional dependency (``pip install 'pyserini-diffretriever[ray]'``); it is imported only when a Ray run
starts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..corpus import JsonlCorpusReader, SkippedRecord
from ..representation.bucketing import TokenCount
from ..writers.checkpoint import fsync_dir
from .encoding import (
    EncodeLoop,
    EncodeRun,
    RecordWindow,
    WindowOptions,
    batch_texts,
    encode_corpus,
    encode_window,
    encoder_settings,
    expected_query_settings,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "BlockEncoder",
    "RayOptions",
    "RayUnavailableError",
    "WorkerOutOfMemoryError",
    "encode_corpus_on_ray",
    "import_ray",
]

DEFAULT_BLOCK_SIZE = 1024
SPILL_SUFFIX = ".ray-blocks"
_HOW_NOT_WHAT = ("overwrite", "progress", "checkpoint_every")  # options that do not change a block's result
INSTALL_HINT = "pip install 'pyserini-diffretriever[ray]'"


class RayUnavailableError(ImportError):
    """Ray is not installed; the message says how to install it."""


class WorkerOutOfMemoryError(RuntimeError):
    """A worker ran out of (GPU or host) memory on a block; the message names the block, batch size and a hint."""


def import_ray() -> Any:
    """Import Ray, or raise :class:`RayUnavailableError` naming the extra to install."""
    try:
        import ray
    except ImportError as error:
        raise RayUnavailableError(
            f"encoding on Ray needs the ray package ({error}); install it: {INSTALL_HINT}"
        ) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How a Ray run is laid out; none of these change the output bytes.

    ``address``: ``None`` starts a local cluster (or reuses one this process started), ``"auto"`` joins the
    cluster of ``ray start`` on this machine, ``"ray://host:10001"`` a remote one. ``gpus_per_worker=None`` gives
    each worker one GPU when the cluster has GPUs, none otherwise. ``cpus_per_worker`` also sets each worker's
    torch threads. ``max_restarts`` bounds how often a dead worker is restarted (its blocks are retried).
    """

    address: str | None = None
    workers: int = 1
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    block_size: int = DEFAULT_BLOCK_SIZE
    max_restarts: int = 3

    def __post_init__(self) -> None:
        if self.workers < 1 or self.block_size < 1 or self.cpus_per_worker <= 0 or self.max_restarts < 0:
            raise ValueError(
                "Ray options need workers >= 1, block_size >= 1, cpus_per_worker > 0 and max_restarts >= 0 "
                f"(got {self.workers}, {self.block_size}, {self.cpus_per_worker}, {self.max_restarts})"
            )
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")


_Payload = tuple[list[str], list[str], "list[str] | None"]  # one window: docids, texts, titles


class BlockEncoder:
    """One model replica (a Ray actor): loads the encoder once, then encodes whole blocks of batches.

    ``factory`` is a picklable zero-argument callable returning the document encoder (the encode CLI passes
    ``partial(load_encoder, args.encoder)``), so the model is loaded where the actor runs, on its GPU.
    """

    def __init__(self, factory: Callable[[], Any], threads: int | None = None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.encoder = factory()

    def describe(self, query_options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The encoder's settings and the manifests' ``query`` record (the driver loads no model)."""
        return encoder_settings(self.encoder), expected_query_settings(self.encoder, **query_options)

    def encode(self, label: str, windows: list[_Payload], options: dict[str, Any]) -> list[dict[str, Any]]:
        """Every window of a block as ``{representation: vectors, "tokens": {"real", "computed"} or None}``."""
        import torch

        how = WindowOptions(options["batch_size"], options["max_tokens"], options["max_length"], options["fp16"])
        results = []
        try:
            for ids, texts, titles in windows:
                encoded, tokens = encode_window(self.encoder, options["representations"], ids, texts, titles, how)
                results.append({**encoded, "tokens": None if tokens is None else tokens.record()})
        except (MemoryError, torch.OutOfMemoryError) as error:
            raise _out_of_memory(label, options["batch_size"], error) from None
        return results


def _out_of_memory(label: str, batch_size: int, error: BaseException) -> WorkerOutOfMemoryError:
    return WorkerOutOfMemoryError(
        f"{label}, batch size {batch_size}: the worker ran out of memory ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no details'}); lower encoder --batch-size, "
        "--max-tokens or --max-length, or give each worker more memory (ray --gpus-per-worker / fewer --workers per node)"
    )


@dataclass
class _Block:
    """A span of the shard: whole windows of good records plus the bad records among them, in corpus order."""

    index: int
    start: int  # records consumed before the block (resume point)
    end: int = 0  # records consumed after it
    digest: str = ""  # corpus_sha256 of everything consumed up to ``end``
    events: list[SkippedRecord | int] = field(default_factory=list)  # bad records and window numbers, in order
    ids: list[list[str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"block {self.index} (records {self.start + 1}..{self.end} of the shard)"


class _SpillStore:
    """Finished blocks that wait for the blocks ahead of them, one ``.npz`` file each (no pickles).

    A file names its block by the corpus range, the hash of the corpus up to its end and the run's settings, so a
    rerun only takes blocks of the very same run; writes are atomic (temporary file, fsync, rename).
    """

    def __init__(self, directory: Path, settings_sha256: str) -> None:
        self.directory = directory
        self.settings_sha256 = settings_sha256

    def _path(self, block: _Block) -> Path:
        return self.directory / f"block-{block.start:012d}-{block.end:012d}.npz"

    def _fingerprint(self, block: _Block) -> str:
        return json.dumps({"settings": self.settings_sha256, "corpus": block.digest, "ids": block.ids})

    def save(self, block: _Block, batches: list[Mapping[str, Any]]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"fingerprint": np.array(self._fingerprint(block))}
        for number, batch in enumerate(batches):
            for name, vectors in batch.items():
                if name == "tokens":
                    if vectors is not None:
                        arrays[f"{number}/tokens"] = np.array([vectors["real"], vectors["computed"]], dtype=np.int64)
                elif name == "dense":
                    arrays[f"{number}/dense"] = np.asarray(vectors)
                elif name == "multi":
                    arrays[f"{number}/multi"] = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
                    arrays[f"{number}/multi_rows"] = np.array([len(item) for item in vectors], dtype=np.int64)
                else:
                    arrays[f"{number}/{name}"] = np.array(json.dumps(vectors, ensure_ascii=False))
        path = self._path(block)
        with tempfile.NamedTemporaryFile(dir=self.directory, suffix=".tmp", delete=False) as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
        fsync_dir(self.directory)
        return path

    def load(self, block: _Block, representations: Sequence[str]) -> list[dict[str, Any]] | None:
        """The block's batches if a valid spill of this very block exists, else ``None``."""
        path = self._path(block)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["fingerprint"]) != self._fingerprint(block):
                    return None
                return [self._batch(data, number, representations) for number in range(len(block.ids))]
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable spilled block %s: %s", path, error)
            return None

    @staticmethod
    def _batch(data: Any, number: int, representations: Sequence[str]) -> dict[str, Any]:
        batch: dict[str, Any] = {"tokens": None}
        if f"{number}/tokens" in data:
            real, computed = (int(value) for value in data[f"{number}/tokens"])
            batch["tokens"] = {"real": real, "computed": computed}
        for name in representations:
            if name == "dense":
                batch[name] = data[f"{number}/dense"]
            elif name == "multi":
                rows = np.cumsum(data[f"{number}/multi_rows"])[:-1]
                batch[name] = list(np.split(data[f"{number}/multi"], rows))
            else:
                batch[name] = json.loads(str(data[f"{number}/{name}"]))
        return batch

    def discard(self, block: _Block) -> None:
        self._path(block).unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _Workers:
    """The Ray actors and the blocks in flight; blocks go to the least busy worker, results come as they finish."""

    def __init__(self, ray: Any, factory: Callable[[], Any], options: RayOptions, gpus: float) -> None:
        self.ray = ray
        threads = max(1, int(options.cpus_per_worker))
        actor_class = ray.remote(max_restarts=options.max_restarts, max_task_retries=options.max_restarts)(BlockEncoder)
        self.actors = [
            actor_class.options(num_cpus=options.cpus_per_worker, num_gpus=gpus).remote(factory, threads)
            for _ in range(options.workers)
        ]
        self.busy = [0] * len(self.actors)
        self.in_flight: dict[Any, tuple[_Block, int]] = {}

    def describe(self, query_options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return self.get(self.actors[0].describe.remote(dict(query_options)), "loading the encoder")

    def submit(self, block: _Block, batches: list[_Payload], options: dict) -> None:
        worker = min(range(len(self.actors)), key=self.busy.__getitem__)
        reference = self.actors[worker].encode.remote(block.label, batches, options)
        self.busy[worker] += 1
        self.in_flight[reference] = (block, worker)

    def next_done(self) -> tuple[_Block, list[dict[str, Any]]]:
        """Wait for any block in flight to finish; return it with its batches."""
        done, _ = self.ray.wait(list(self.in_flight), num_returns=1)
        block, worker = self.in_flight.pop(done[0])
        self.busy[worker] -= 1
        return block, self.get(done[0], block.label)

    def get(self, reference: Any, what: str) -> Any:
        """``ray.get`` that re-raises a worker's own exception, and names the block for Ray's failures."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(reference)
        except exceptions.RayTaskError as error:
            cause = error.cause if isinstance(error.cause, BaseException) else None
            if cause is None:
                raise
            raise cause from None
        except exceptions.OutOfMemoryError as error:
            raise WorkerOutOfMemoryError(
                f"{what}: Ray's memory monitor killed the worker ({str(error).splitlines()[0]}); lower encoder "
                "--batch-size or ray --block-size, or run fewer --workers per node"
            ) from None
        except exceptions.RayActorError as error:
            raise RuntimeError(
                f"{what}: the Ray worker died and could not be restarted ({str(error).splitlines()[0]}); "
                "rerun the same command to resume from the last committed block"
            ) from None

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors, self.in_flight = [], {}


class BlockLoop(EncodeLoop):
    """The encode loop with remote forward passes: blocks out to the workers, results written back in order.

    Consuming the corpus (resume check, bad records, windows) is :class:`~.encoding.EncodeLoop`'s; only encoding
    a full window is deferred to the block it belongs to, and progress is committed at block ends.
    """

    def __init__(
        self,
        run: EncodeRun,
        writers: Mapping[str, Any],
        out: Any,
        committed: Mapping[str, Any],
        *,
        workers: _Workers,
        spills: _SpillStore,
        block_size: int,
    ) -> None:
        super().__init__(run, writers, out, committed)
        self.workers, self.spills = workers, spills
        self.windows_per_block = max(1, -(-block_size // self.window_size))
        self.in_flight_limit = 2 * len(workers.actors)  # blocks in flight: every worker busy plus one queued each
        self.block = _Block(0, self.done)
        self.next_index = 0
        self.ready: dict[int, tuple[_Block, list[dict[str, Any]] | None]] = {}
        self.options = {
            "representations": list(writers),
            "max_length": self.max_length,
            "fp16": self.fp16,
            "batch_size": self.batch_size,
            "max_tokens": self.options.max_tokens,
        }
        self.payload: list[_Payload] = []

    # -- consuming: the base class reads the corpus; bad records and full windows join the current block -------
    def _skip(self, entry: SkippedRecord) -> None:
        self._report_skip(entry)
        self.block.events.append(entry)

    def _close_window(self) -> None:
        window, self.window = self.window, RecordWindow()
        ids = [record.docid for record in window.records]
        self.block.events.append(len(self.block.ids))
        self.block.ids.append(ids)
        self.payload.append((ids, *batch_texts(window.records, self.reader.fields)))
        if len(self.block.ids) == self.windows_per_block:
            self._close_block()

    def _close_block(self) -> None:
        block, batches = self.block, self.payload
        block.end, block.digest = self.consumed, self.digest.hexdigest()
        self.block, self.payload = _Block(block.index + 1, block.end), []
        spilled = self.spills.load(block, self.options["representations"]) if block.ids else []
        if spilled is not None:
            self.ready[block.index] = (block, spilled)  # nothing to encode, or encoded by an earlier run
        else:
            self.workers.submit(block, batches, self.options)
        self._write_ready()
        while len(self.workers.in_flight) >= self.in_flight_limit:
            self._receive()

    def _flush_remaining(self) -> None:
        if self.window.records:
            self._close_window()
        if self.block.events:
            self._close_block()
        while self.workers.in_flight:
            self._receive()

    def _finish(self) -> None:
        super()._finish()
        self.spills.remove()

    # -- results: written in block order; a block that finishes early is spilled -------------------------------
    def _receive(self) -> None:
        block, batches = self.workers.next_done()
        if block.index == self.next_index:
            self.ready[block.index] = (block, batches)
        else:
            self.spills.save(block, batches)
            self.ready[block.index] = (block, None)
        self._write_ready()

    def _write_ready(self) -> None:
        while self.next_index in self.ready:
            block, batches = self.ready.pop(self.next_index)
            if batches is None:
                batches = self.spills.load(block, self.options["representations"])
                if batches is None:
                    raise RuntimeError(f"{block.label}: its spilled result in {self.spills.directory} vanished")
            for event in block.events:
                if isinstance(event, SkippedRecord):
                    self._write_skipped(event)
                else:
                    tokens = batches[event].get("tokens")
                    self._write_batch(block.ids[event], batches[event], tokens and TokenCount.from_record(tokens))
            self._commit("encoding", block.end, block.digest)
            self.spills.discard(block)
            self.next_index += 1


def _settings_sha256(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class _RemoteEncoder:
    """The driver's stand-in for the workers' encoder: its settings, for the manifests and the resume check."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = dict(settings)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)


def _start_ray(ray: Any, options: RayOptions) -> float:
    """Join or start the cluster; return the GPUs each worker gets."""
    if not ray.is_initialized():
        ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING)
    if options.gpus_per_worker is not None:
        return float(options.gpus_per_worker)
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def encode_corpus_on_ray(
    encoder_factory: Callable[[], Any],
    reader: JsonlCorpusReader,
    output: str | os.PathLike,
    representations: Sequence[str] = ("dense",),
    *,
    ray_options: RayOptions | None = None,
    query_options: Mapping[str, Any] | None = None,
    restart: bool = False,
    **encode_options: Any,
) -> dict[str, Path]:
    """:func:`~.encoding.encode_corpus` with the forward passes on Ray workers; the same folders, byte for byte.

    ``encoder_factory`` builds the document encoder inside each worker (picklable: a ``functools.partial`` of a
    module-level function); ``query_options`` are :func:`~.encoding.expected_query_settings`' ``k`` / ``prompt`` /
    ``max_length``. ``encode_options`` are :func:`~.encoding.encode_corpus`' keyword options (``batch_size``,
    ``shard``, ``max_length``, ``fp16``, ``multi_dtype``, ...), with the same meaning and checks.

    Raises
    ------
    RayUnavailableError
        Ray is not installed.
    WorkerOutOfMemoryError
        A worker ran out of memory (block, record range and batch size named).
    CorpusError, WriterError, ResumeError, OutputExistsError
        As :func:`~.encoding.encode_corpus`.
    """
    ray = import_ray()
    options = ray_options or RayOptions()
    spills = Path(f"{os.fspath(output).rstrip(os.sep)}{SPILL_SUFFIX}")
    if restart:
        shutil.rmtree(spills, ignore_errors=True)
    gpus = _start_ray(ray, options)
    workers = _Workers(ray, encoder_factory, options, gpus)
    try:
        settings, query = workers.describe(query_options or {})
        record = {
            "engine": "ray",
            "ray_version": ray.__version__,
            "workers": options.workers,
            "gpus_per_worker": gpus,
            "cpus_per_worker": options.cpus_per_worker,
            "block_size": options.block_size,
        }
        what = {key: value for key, value in encode_options.items() if key not in _HOW_NOT_WHAT}
        store = _SpillStore(spills, _settings_sha256({"encoder": settings, "query": query, **what}))
        loop = partial(BlockLoop, workers=workers, spills=store, block_size=options.block_size)
        return encode_corpus(
            _RemoteEncoder(settings),
            reader,
            output,
            representations,
            query=query,
            restart=restart,
            loop_factory=loop,
            manifest_extra={"distributed": record},
            **encode_options,
        )
    finally:
        workers.close()

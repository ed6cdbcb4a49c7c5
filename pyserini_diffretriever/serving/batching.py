"""Micro-batching of concurrent queries: one forward pass for the queries that arrive within a short window.

Why: a server answers each request in its own thread; encoding every query alone leaves the backbone's weights
to be read once per query. :class:`MicroBatcher` owns one loaded model and a worker thread: request threads put
``(query encoder settings, text)`` on a queue and block; the worker takes the first request, keeps collecting
for ``window_ms`` (or until ``max_batch`` requests), then encodes each group of requests with the same query
settings in **one** :meth:`~pyserini_diffretriever.encoders.model.DiffRetrieverModel.encode_side` call (all
representations the group asked for come from that pass) and hands every thread its row.

The result of a query does not depend on its batch: inputs are left-padded, padded keys are masked and position
ids count real tokens only (see :meth:`~pyserini_diffretriever.backbones.dream.DreamBackbone.hidden_states`), so
vectors agree with one-by-one encoding to float rounding (tested at 1e-5). Because only the worker thread runs
the model, concurrent requests can never interleave inside a forward pass.

Mixed lengths: inside a micro-batch the queries are sorted by token length, longest first, as documents are
(:func:`~pyserini_diffretriever.representation.bucketing.plan_batches`); with ``max_tokens`` a micro-batch whose
padded size (rows x longest row) would pass the budget is split into several passes, so one long query cannot make
the whole batch pay its length. ``tokens`` counts the real and computed tokens of every pass.

Latency vs throughput: a query waits at most ``window_ms`` for company before its pass starts. ``window_ms=0``
adds no wait at all and still batches under load (whatever queued while the model was busy forms the next
batch); a few milliseconds gather more queries per pass when the model is fast relative to request arrival.

:class:`BatchedQueryEncoder` puts a batcher behind the ``QueryEncoder`` interface Pyserini's searchers call, and
:func:`encode_ahead` encodes a query once for all the encoders of a (hybrid) searcher before the search starts.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from pyserini.encode import QueryEncoder

from ..encoders.model import DiffRetrieverModel, RepresentationBatch, SideEncoder
from ..representation.bucketing import TokenCount

logger = logging.getLogger(__name__)

__all__ = ["BatchedQueryEncoder", "MicroBatcher", "encode_ahead"]

DEFAULT_WINDOW_MS = 2.0
DEFAULT_MAX_BATCH = 32


def settings_key(side: SideEncoder) -> tuple:
    """What must be equal for two queries to share one ``encode_side`` call (everything but the representation)."""
    return (side.side, side.k, str(side.prompt), side.max_length, side.title_separator, side.readout)


@dataclass
class _Request:
    side: SideEncoder
    text: str
    representations: frozenset[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Encode queries from many threads with one model, batching those that arrive within ``window_ms``.

    Parameters
    ----------
    model : DiffRetrieverModel
        The loaded model every request uses (the batcher's worker is the only thread that runs it).
    window_ms : float
        How long the first query of a batch waits for more (0: no wait; whatever already queued still joins).
    max_batch : int
        Most queries in one forward pass.
    max_tokens : int, optional
        Most computed tokens (rows x longest row, prompt and slots included) in one forward pass; a larger
        micro-batch is split, sorted by length. ``None``: no budget. A query longer than the budget fails with
        :class:`~pyserini_diffretriever.representation.bucketing.TokenBudgetError`.
    """

    def __init__(
        self,
        model: DiffRetrieverModel,
        *,
        window_ms: float = DEFAULT_WINDOW_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_tokens: int | None = None,
    ) -> None:
        if window_ms < 0:
            raise ValueError(f"window_ms={window_ms}: expected >= 0")
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch}: expected >= 1")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens={max_tokens}: expected >= 1")
        self.model = model
        self.window_s = window_ms / 1000.0
        self.max_batch = int(max_batch)
        self.max_tokens = max_tokens
        self.batches = 0
        self.queries = 0
        self.tokens = TokenCount()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="diffretriever-micro-batcher", daemon=True)
        self._worker.start()

    def submit(self, side: SideEncoder, text: str, representations: Iterable[str]) -> Future:
        """Queue one query; the future's result is ``{representation: value}`` for the asked representations."""
        if self._closed:
            raise RuntimeError("the micro-batcher is closed")
        if side.model is not self.model:
            raise ValueError("this query encoder uses another model than the micro-batcher's")
        request = _Request(side, text, frozenset(representations))
        self._queue.put(request)
        return request.future

    def encode(self, side: SideEncoder, text: str, representations: Iterable[str]) -> dict[str, Any]:
        """Queue one query and wait for its representations."""
        return self.submit(side, text, representations).result()

    def close(self) -> None:
        """Stop the worker after the queued requests (later submissions raise)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._worker.join(timeout=30)
            logger.info(
                "micro-batcher: %d queries in %d micro-batches (%.2f per batch); tokens %d real, %d computed (%.2fx)",
                self.queries,
                self.batches,
                self.queries / max(self.batches, 1),
                self.tokens.real,
                self.tokens.computed,
                self.tokens.ratio,
            )

    # -- worker ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            self._encode_groups(batch)
            if stop:
                return

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        """The first request plus those arriving within the window (``stop``: ``close`` was called meanwhile)."""
        batch = [first]
        deadline = time.perf_counter() + self.window_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _encode_groups(self, batch: list[_Request]) -> None:
        groups: dict[tuple, list[_Request]] = {}
        for request in batch:
            groups.setdefault(settings_key(request.side), []).append(request)
        for requests in groups.values():
            try:
                self._encode_group(requests)
            except BaseException as error:  # noqa: BLE001 - the waiting threads get the error, the worker lives on
                for request in requests:
                    if not request.future.done():
                        request.future.set_exception(error)

    def _encode_group(self, requests: Sequence[_Request]) -> None:
        """One ``encode_side`` call for requests with the same settings (identical texts encoded once)."""
        side = requests[0].side
        texts = list(dict.fromkeys(request.text for request in requests))
        wanted = frozenset().union(*(request.representations for request in requests))
        encoded = self.model.encode_side(
            texts,
            side.side,
            k=side.k,
            prompt=side.prompt,
            max_length=side.max_length,
            batch_size=len(texts),
            max_tokens=self.max_tokens,
            readout=side.readout,
            title_separator=side.title_separator,
            representations=wanted,
        )
        self.batches += 1
        self.queries += len(requests)
        self.tokens += encoded.tokens
        row = {text: i for i, text in enumerate(texts)}
        for request in requests:
            i = row[request.text]
            request.future.set_result({name: _row(encoded, name, i) for name in request.representations})


def _row(encoded: RepresentationBatch, representation: str, i: int) -> Any:
    """Text ``i``'s value of one representation (dense rows copied out of the batch matrix)."""
    if representation == "dense":
        return encoded.dense[i].copy()
    return encoded.multi[i] if representation == "multi" else encoded.impact[i]


_ahead = threading.local()


class BatchedQueryEncoder(QueryEncoder):
    """A :class:`~pyserini_diffretriever.encoders.DiffRetrieverQueryEncoder` whose queries go through a batcher.

    Pyserini's searchers call ``encode(query)``; this returns what the wrapped encoder would, computed in the
    batcher's next forward pass (or taken from :func:`encode_ahead`). ``settings()``, ``dimension`` and the
    other attributes are the wrapped encoder's.
    """

    def __init__(self, encoder: Any, batcher: MicroBatcher) -> None:
        super().__init__()
        self.encoder = encoder
        self.batcher = batcher
        self.has_model = True

    @property
    def side(self) -> SideEncoder:
        return self.encoder._side

    def __getattr__(self, name: str) -> Any:
        if name == "encoder":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.encoder, name)

    def encode(self, query: str, **kwargs: Any) -> Any:
        if not isinstance(query, str):
            raise TypeError(f"{type(self).__name__}.encode expects one query string, got {type(query).__name__}")
        ready = (getattr(_ahead, "values", None) or {}).get((id(self), query))
        if ready is not None:
            return ready
        return self.batcher.encode(self.side, query, (self.encoder.representation,))[self.encoder.representation]

    def encode_batch(self, queries: Sequence[str], **kwargs: Any) -> Any:
        """Each query through the batcher (one pass when they fit ``max_batch``); same shapes as the wrapped."""
        futures = [self.batcher.submit(self.side, q, (self.encoder.representation,)) for q in queries]
        values = [future.result()[self.encoder.representation] for future in futures]
        if self.encoder.representation == "dense":
            import numpy as np

            return np.stack(values) if values else np.zeros((0, self.encoder.dimension), dtype=np.float32)
        return values

    def settings(self) -> dict:
        return self.encoder.settings()


@contextlib.contextmanager
def encode_ahead(encoders: Sequence[BatchedQueryEncoder], query: str) -> Iterator[None]:
    """Encode ``query`` for all ``encoders`` (one batcher request per model and settings), then let their
    ``encode(query)`` calls inside the block return those values: a hybrid searcher's two sides cost one pass."""
    groups: dict[tuple, list[BatchedQueryEncoder]] = {}
    for encoder in encoders:
        groups.setdefault((id(encoder.batcher), settings_key(encoder.side)), []).append(encoder)
    pending = [
        (members, members[0].batcher.submit(members[0].side, query, {e.encoder.representation for e in members}))
        for members in groups.values()
    ]
    values: dict[tuple[int, str], Any] = {}
    for members, future in pending:
        result = future.result()
        for encoder in members:
            values[(id(encoder), query)] = result[encoder.encoder.representation]
    previous = getattr(_ahead, "values", None)
    _ahead.values = {**(previous or {}), **values}
    try:
        yield
    finally:
        _ahead.values = previous

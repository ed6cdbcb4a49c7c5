"""Dense vectors -> a FAISS folder that :class:`pyserini.search.faiss.FaissSearcher` opens as is.

Layout (Pyserini's, see ``FaissSearcher.load_index``)::

    DIR/index          a faiss.IndexFlatIP file (byte-identical to faiss.write_index; see write_flat_ip_index)
    DIR/docid          one document id per line, in vector order
    DIR/manifest.json  kind "dense" (see :mod:`.manifest`)

Why not Pyserini's ``FaissRepresentationWriter``: it needs the dimension before the first batch (its CLI
defaults to 768), keeps the index only in memory (nothing to resume after a crash) and importing
:mod:`pyserini.encode` starts the JVM in Pyserini 2.3. This writer takes the dimension from the first batch,
checks every batch (shape, finite values), appends raw float32 rows (resumable), builds the index at the end,
and writes the manifest last.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..layouts import DOCID_FILE, FAISS_INDEX_FILE, RAW_VECTORS_FILE
from . import _files
from .base import VectorWriter, WriterError, read_id_lines
from .manifest import build_manifest, read_manifest

logger = logging.getLogger(__name__)


class FaissFlatWriter(VectorWriter):
    """Stream ``[B, H]`` float32 batches into an exact inner-product FAISS index plus a ``docid`` file.

    Vectors are appended to ``vectors.f32.tmp`` while documents arrive and the ``index`` file is streamed from
    it by :meth:`finish` (so an interrupted run resumes without any FAISS state, and no vector is held in
    memory); the temporary file is deleted by :meth:`cleanup`.

    Parameters
    ----------
    directory : str or PathLike
        Output folder (created; must not contain output already).
    encoder_settings : mapping, optional
        ``encoder.settings()``; stored in the manifest.
    dimension : int, optional
        Expected vector size; default: taken from the first batch.
    shard : (int, int)
        ``(shard_id, shard_num)`` recorded in the manifest.
    manifest_extra : mapping, optional
        Extra manifest keys.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "dense")
    >>> with FaissFlatWriter(out) as writer:
    ...     writer.write({"id": ["d1", "d2"], "vector": np.eye(2, 4, dtype="float32")})
    >>> sorted(os.listdir(out))
    ['docid', 'index', 'manifest.json']
    """

    kind = "dense"
    TEMP_FILES = (RAW_VECTORS_FILE,)

    def __init__(
        self,
        directory: str | os.PathLike,
        encoder_settings: Mapping[str, Any] | None = None,
        dimension: int | None = None,
        shard: tuple[int, int] = (0, 1),
        manifest_extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(directory, encoder_settings, shard, manifest_extra)
        self.dimension = dimension

    def _open(self) -> None:
        self._append_file(RAW_VECTORS_FILE)
        self._append_file(DOCID_FILE)

    def _reopen(self) -> None:
        self._reopen_file(RAW_VECTORS_FILE)
        self._reopen_file(DOCID_FILE)

    def _state(self) -> dict[str, Any]:
        return {"dimension": self.dimension}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.dimension = state.get("dimension")

    def _committed_ids(self) -> list[str]:
        return read_id_lines(self.directory / DOCID_FILE)

    def write(self, batch_info: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        """Add ``batch_info["vector"]`` (``[B, H]``) for the ids ``batch_info["id"]``."""
        ids = self._check_ids(batch_info)
        vectors = np.asarray(batch_info["vector"])
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise WriterError(
                f"dense batch must have shape [{len(ids)}, H], got {list(vectors.shape)} (first id {ids[0]!r})"
            )
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise WriterError(f"dense vector of document {ids[int(np.argmax(bad))]!r} has NaN or infinite values")
        if self.dimension is None:
            self.dimension = int(vectors.shape[1])
        if vectors.shape[1] != self.dimension:
            raise WriterError(
                f"dense vectors have dimension {vectors.shape[1]}, expected {self.dimension} (first id {ids[0]!r})"
            )
        self._open_files[RAW_VECTORS_FILE].write(vectors.tobytes())
        self._open_files[DOCID_FILE].write("".join(f"{docid}\n" for docid in ids).encode("utf-8"))
        self.num_docs += len(ids)

    def _finish(self) -> None:
        raw = self.directory / RAW_VECTORS_FILE
        expected = self.num_docs * int(self.dimension) * 4
        if raw.stat().st_size != expected:
            raise WriterError(
                f"{raw}: {raw.stat().st_size} bytes, expected {expected} for {self.num_docs} "
                f"vectors of dimension {self.dimension}"
            )
        tmp = self.directory / f"{FAISS_INDEX_FILE}.tmp"
        write_flat_ip_index(raw, self.num_docs, int(self.dimension), tmp)
        os.replace(tmp, self.directory / FAISS_INDEX_FILE)

    def _manifest(self) -> dict[str, Any]:
        return build_manifest(
            "dense",
            self.encoder_settings,
            self.num_docs,
            dimension=self.dimension,
            shard=self.shard,
            index_type="IndexFlatIP",
            metric="inner_product",
            **self.manifest_extra,
        )


FLAT_HEADER = struct.Struct("<4siqqqbi")
"""FAISS ``write_index``'s flat-index header (unchanged since 2017): fourcc ``IxFI``/``IxF2``, ``int32 d``,
``int64 ntotal``, two ``int64`` dummies (``1 << 20``), ``uint8 is_trained``, ``int32 metric_type``; the codes follow
as ``uint64 n*d`` and then ``n*d`` float32."""

FLAT_HEADER_BYTES = FLAT_HEADER.size + 8
"""Bytes before the first vector: the header plus the ``uint64`` element count."""

FLAT_FOURCC = {b"IxFI": "inner_product", b"IxF2": "l2"}
"""Flat index fourcc -> metric."""


@dataclass(frozen=True)
class FlatHeader:
    """What the first :data:`FLAT_HEADER_BYTES` of a flat FAISS index file say (:func:`read_flat_header`)."""

    metric: str
    dimension: int
    num_vectors: int
    elements: int

    @property
    def expected_size(self) -> int:
        """File size of a complete index with this header: the header and ``elements`` float32 values."""
        return FLAT_HEADER_BYTES + 4 * self.elements

    def row_offset(self, row: int) -> int:
        """Byte offset of vector ``row`` in the file."""
        return FLAT_HEADER_BYTES + 4 * self.dimension * row


def flat_index_header(num_vectors: int, dimension: int, metric: str = "inner_product") -> bytes:
    """The bytes ``faiss.write_index`` puts before the vectors of an ``IndexFlatIP``/``IndexFlatL2``.

    Layout: :data:`FLAT_HEADER` then the ``uint64`` element count. The tests check it against ``faiss.write_index``.
    """
    fourcc = {name: code for code, name in FLAT_FOURCC.items()}[metric]
    metric_type = 0 if metric == "inner_product" else 1
    return FLAT_HEADER.pack(fourcc, dimension, num_vectors, 1 << 20, 1 << 20, 1, metric_type) + struct.pack(
        "<Q", num_vectors * dimension
    )


def read_flat_header(path: str | os.PathLike) -> FlatHeader | None:
    """Parse the header of a flat FAISS index file; the one reader of the layout :func:`flat_index_header` writes.

    Returns
    -------
    FlatHeader or None
        ``None`` when the file does not start with a flat fourcc (another FAISS index type: open it with FAISS).

    Raises
    ------
    WriterError
        A flat fourcc followed by fewer bytes than a header (a truncated file).
    """
    with open(path, "rb") as handle:
        head = handle.read(FLAT_HEADER_BYTES)
    metric = FLAT_FOURCC.get(head[:4])
    if metric is None:
        return None
    if len(head) < FLAT_HEADER_BYTES:
        raise WriterError(f"{path} is truncated ({len(head)} bytes, shorter than a FAISS header)")
    _, dimension, ntotal, _, _, _, _ = FLAT_HEADER.unpack(head[: FLAT_HEADER.size])
    (elements,) = struct.unpack("<Q", head[FLAT_HEADER.size :])
    return FlatHeader(metric, int(dimension), int(ntotal), int(elements))


def write_flat_ip_index(
    raw_vectors: str | os.PathLike,
    num_vectors: int,
    dimension: int,
    path: str | os.PathLike,
    chunk_bytes: int = 64 << 20,
) -> None:
    """Write the FAISS ``IndexFlatIP`` file of ``num_vectors`` float32 rows stored in ``raw_vectors``.

    Why not ``faiss.IndexFlatIP`` + ``faiss.write_index``: that holds every vector in memory a second time, and
    a failed write (a full disk) surfaces as a generic ``RuntimeError``. Streaming the rows behind the header
    gives the same bytes with constant memory and a plain ``OSError`` on failure; the result is fsynced.
    """
    with open(raw_vectors, "rb") as source, _files.open_output(path, "wb") as target:
        target.write(flat_index_header(num_vectors, dimension))
        remaining = num_vectors * dimension * 4
        while remaining:
            chunk = source.read(min(chunk_bytes, remaining))
            if not chunk:
                raise WriterError(f"{raw_vectors}: ended {remaining} bytes early")
            target.write(chunk)
            remaining -= len(chunk)
        target.flush()
        os.fsync(target.fileno())


def read_faiss_docids(directory: str | os.PathLike) -> list[str]:
    """The ``docid`` file of a dense folder, exactly as ``FaissSearcher.load_docids`` reads it."""
    with open(Path(directory) / DOCID_FILE, encoding="utf-8") as handle:
        return [line.rstrip() for line in handle]


def merge_faiss(
    inputs: Sequence[str | os.PathLike], output: str | os.PathLike, manifest_extra: Mapping[str, Any] | None = None
) -> int:
    """Concatenate dense shard folders (in the given order) into ``output``; return the document count."""
    import faiss

    first = read_manifest(inputs[0], "dense")
    writer = FaissFlatWriter(output, first["encoder"], dimension=first["dimension"], manifest_extra=manifest_extra)
    with writer:
        for folder in inputs:
            index = faiss.read_index(str(Path(folder) / FAISS_INDEX_FILE))
            ids = read_faiss_docids(folder)
            if index.ntotal != len(ids):
                raise WriterError(f"{folder}: index holds {index.ntotal} vectors but docid lists {len(ids)} ids")
            step = 65536
            for begin in range(0, len(ids), step):
                stop = min(begin + step, len(ids))
                writer.write({"id": ids[begin:stop], "vector": index.reconstruct_n(begin, stop - begin)})
            writer.copy_skipped_report(folder)
    return writer.num_docs

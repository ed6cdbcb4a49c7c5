"""Multi-vector documents (K' vectors each) -> a flat matrix plus offsets, written with flat memory use.

Layout::

    DIR/vectors.npy    [total_vectors, H] float32 (or float16), rows of document i are offsets[i]:offsets[i+1]
    DIR/offsets.npy    int64 [N + 1], offsets[0] == 0, offsets[-1] == total_vectors
    DIR/docid          one id per line, document order
    DIR/manifest.json  kind "multi", dimension, dtype, num_vectors

Why this way: the total number of vectors is unknown until the corpus ends, and keeping them in memory does
not scale. Rows are appended to ``vectors.npy`` after a reserved 128-byte header, and the real ``.npy`` header
(written with :func:`numpy.lib.format.write_array_header_1_0`) replaces the reservation when the shape is known;
document end offsets are appended to ``offsets.i64.tmp`` and become ``offsets.npy`` at the end. Memory stays at
one batch and disk at one copy, and an interrupted run resumes from its last checkpoint (append-only files).
Read with ``np.load(DIR/"vectors.npy", mmap_mode="r")``.
Candidate-generation (ANN) structures are built by the searcher from these files.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..layouts import DOCID_FILE, OFFSETS_FILE, RAW_OFFSETS_FILE, VECTORS_FILE
from . import _files
from .base import VectorWriter, WriterError, read_id_lines
from .manifest import build_manifest
from .verify import verify_output

logger = logging.getLogger(__name__)

_HEADER_BYTES = 128  # what numpy writes for any 2-D shape below ~10^40 rows


def _npy_header(dtype: np.dtype, shape: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    header = buffer.getvalue()
    if len(header) != _HEADER_BYTES:  # pragma: no cover - needs an absurd shape
        raise WriterError(f"unexpected .npy header size {len(header)} for shape {shape}")
    return header


class MultiVectorWriter(VectorWriter):
    """Stream per-document ``[K', H]`` matrices into ``vectors.npy`` + ``offsets.npy`` + ``docid``.

    Parameters
    ----------
    directory : str or PathLike
        Output folder (created; must be empty).
    encoder_settings : mapping, optional
        ``encoder.settings()``; stored in the manifest.
    dtype : {"float32", "float16"}
        Storage type of ``vectors.npy`` (float16 halves the size; values must fit, else an error).
    dimension : int, optional
        Expected vector size; default: from the first document.
    shard, manifest_extra
        As for :class:`~pyserini_diffretriever.writers.faiss.FaissFlatWriter`.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "multi")
    >>> with MultiVectorWriter(out) as writer:
    ...     writer.write({"id": ["d1", "d2"], "vector": [np.ones((3, 4), "float32"), np.zeros((1, 4), "float32")]})
    >>> np.load(os.path.join(out, "offsets.npy")).tolist(), np.load(os.path.join(out, "vectors.npy")).shape
    ([0, 3, 4], (4, 4))
    """

    kind = "multi"
    TEMP_FILES = (RAW_OFFSETS_FILE,)
    ROWS_NAME = VECTORS_FILE
    """The ``.npy`` file holding one row per vector (subclasses store codes instead of vectors)."""

    def __init__(
        self,
        directory: str | os.PathLike,
        encoder_settings: Mapping[str, Any] | None = None,
        dtype: str = "float32",
        dimension: int | None = None,
        shard: tuple[int, int] = (0, 1),
        manifest_extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(directory, encoder_settings, shard, manifest_extra)
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.dimension = dimension
        self.num_vectors = 0

    def _open(self) -> None:
        self._append_file(self.ROWS_NAME).write(b"\0" * _HEADER_BYTES)
        self._append_file(RAW_OFFSETS_FILE)
        self._append_file(DOCID_FILE)

    def _reopen(self) -> None:
        for name in (self.ROWS_NAME, RAW_OFFSETS_FILE, DOCID_FILE):
            self._reopen_file(name)

    def _state(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "num_vectors": self.num_vectors}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.dimension = state.get("dimension")
        self.num_vectors = int(state["num_vectors"])

    def _committed_ids(self) -> list[str]:
        return read_id_lines(self.directory / DOCID_FILE)

    def write(self, batch_info: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        """Append ``batch_info["vector"]`` (a list of ``[K', H]`` arrays, ``K' >= 1``) for ``batch_info["id"]``."""
        ids = self._check_ids(batch_info)
        matrices = list(batch_info["vector"])
        if len(matrices) != len(ids):
            raise WriterError(f"multi batch has {len(matrices)} matrices for {len(ids)} ids (first id {ids[0]!r})")
        stored_all, ends = [], []
        num_vectors, dimension = self.num_vectors, self.dimension
        for docid, matrix in zip(ids, matrices):  # check the whole batch before appending any of it
            matrix = np.asarray(matrix)
            if matrix.ndim != 2 or matrix.shape[0] < 1:
                raise WriterError(
                    f"multi-vector of document {docid!r} must have shape [K>=1, H], got {list(matrix.shape)}"
                )
            if dimension is None:
                dimension = int(matrix.shape[1])
            if matrix.shape[1] != dimension:
                raise WriterError(
                    f"multi-vector of document {docid!r} has dimension {matrix.shape[1]}, expected {dimension}"
                )
            with np.errstate(over="ignore"):  # float16 overflow becomes inf, reported just below
                stored = np.ascontiguousarray(matrix, dtype=self.dtype)
            if not np.isfinite(stored).all():
                raise WriterError(
                    f"multi-vector of document {docid!r} has NaN or infinite values"
                    + (" after conversion to float16" if self.dtype == np.float16 else "")
                )
            stored_all.append(stored)
            num_vectors += stored.shape[0]
            ends.append(num_vectors)
        self.dimension = dimension
        self._open_files[self.ROWS_NAME].write(self._stored_rows(np.concatenate(stored_all)).tobytes())
        self._open_files[RAW_OFFSETS_FILE].write(np.asarray(ends, dtype="<i8").tobytes())
        self._open_files[DOCID_FILE].write("".join(f"{docid}\n" for docid in ids).encode("utf-8"))
        self.num_vectors = num_vectors
        self.num_docs += len(ids)

    def _stored_rows(self, rows: np.ndarray) -> np.ndarray:
        """What is appended to :attr:`ROWS_NAME` for checked rows (here: the rows themselves)."""
        return rows

    def _row_layout(self) -> tuple[np.dtype, int]:
        """``(dtype, width)`` of one stored row of :attr:`ROWS_NAME`."""
        return self.dtype, int(self.dimension)

    def _finish(self) -> None:
        vectors = self.directory / self.ROWS_NAME
        row_dtype, row_width = self._row_layout()
        expected = _HEADER_BYTES + self.num_vectors * row_width * row_dtype.itemsize
        if vectors.stat().st_size != expected:
            raise WriterError(
                f"{vectors}: {vectors.stat().st_size} bytes, expected {expected} for "
                f"{self.num_vectors} rows of width {row_width}"
            )
        ends = np.fromfile(self.directory / RAW_OFFSETS_FILE, dtype="<i8")
        if ends.shape != (self.num_docs,) or (self.num_docs and ends[-1] != self.num_vectors):
            raise WriterError(
                f"{self.directory / RAW_OFFSETS_FILE}: {ends.shape[0]} offsets for {self.num_docs} documents"
            )
        with _files.open_output(vectors, "r+b") as handle:
            handle.write(_npy_header(row_dtype, (self.num_vectors, row_width)))
            handle.flush()
            os.fsync(handle.fileno())
        tmp = self.directory / f"{OFFSETS_FILE}.tmp"
        with _files.open_output(tmp, "wb") as handle:
            np.save(handle, np.concatenate([np.zeros(1, dtype=np.int64), ends.astype(np.int64)]))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / OFFSETS_FILE)

    def _manifest(self) -> dict[str, Any]:
        return build_manifest(
            "multi",
            self.encoder_settings,
            self.num_docs,
            dimension=self.dimension,
            shard=self.shard,
            dtype=self.dtype.name,
            num_vectors=self.num_vectors,
            **self.manifest_extra,
        )


def sample_rows(vectors: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` rows drawn without replacement (all rows if fewer), read in ascending order, as float32.

    Row by row with ``pread`` rather than fancy indexing of the memory map: each page fault of a scattered read
    maps a whole read-ahead window, which made a 65,536-row sample of an 11 GB file look like a 6 GB process.
    """
    if size >= len(vectors):
        return read_rows(vectors, 0, len(vectors)).astype(np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(len(vectors), size=size, replace=False))
    if not isinstance(vectors, np.memmap) or vectors.filename is None:
        return np.asarray(vectors[rows], dtype=np.float32)
    row_bytes = vectors.shape[1] * vectors.dtype.itemsize
    sample = np.empty((size, vectors.shape[1]), dtype=np.float32)
    with open(vectors.filename, "rb") as handle:
        descriptor = handle.fileno()
        for i, row in enumerate(rows.tolist()):
            data = os.pread(descriptor, row_bytes, vectors.offset + row * row_bytes)
            sample[i] = np.frombuffer(data, dtype=vectors.dtype)
    return sample


def read_rows(vectors: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo..hi-1`` of a memory-mapped ``.npy`` read with plain file reads.

    Why not slicing the memory map: pages touched through a map stay resident and count in the process's memory
    until the kernel reclaims them, so streaming an 11 GB file that way looks (and is scheduled) like an 11 GB
    process. A read copies one step into private memory and leaves the rest to the page cache.
    """
    if not isinstance(vectors, np.memmap) or vectors.filename is None:
        return np.asarray(vectors[lo:hi])
    row_bytes = vectors.shape[1] * vectors.dtype.itemsize
    with open(vectors.filename, "rb") as handle:
        handle.seek(vectors.offset + lo * row_bytes)
        data = handle.read((hi - lo) * row_bytes)
    return np.frombuffer(data, dtype=vectors.dtype).reshape(hi - lo, vectors.shape[1])


class MultiVectorFolder:
    """Read access to a multi-vector folder (memory-mapped), checking that its files agree.

    Attributes
    ----------
    vectors : np.ndarray
        ``[total_vectors, H]`` memory map.
    offsets : np.ndarray
        ``int64 [N + 1]``.
    docids : list of str
    manifest : dict
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.manifest = verify_output(self.directory, "multi")  # sizes and headers before any memory map
        self.vectors = np.load(self.directory / VECTORS_FILE, mmap_mode="r")
        self.offsets = np.load(self.directory / OFFSETS_FILE)
        with open(self.directory / DOCID_FILE, encoding="utf-8") as handle:
            self.docids = [line.rstrip("\n") for line in handle]
        n = len(self.docids)
        problems = []
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 1):
            problems.append(f"offsets must be increasing int64 [N+1={n + 1}] from 0")
        elif self.offsets[-1] != self.vectors.shape[0]:
            problems.append(f"offsets end at {self.offsets[-1]} but vectors.npy has {self.vectors.shape[0]} rows")
        if self.manifest["num_docs"] != n:
            problems.append(f"manifest num_docs {self.manifest['num_docs']} != {n} ids")
        if self.vectors.ndim != 2 or self.vectors.shape[1] != self.manifest.get("dimension"):
            problems.append(
                f"vectors.npy shape {self.vectors.shape} does not match dimension {self.manifest.get('dimension')}"
            )
        if problems:
            raise WriterError(f"{self.directory}: inconsistent multi-vector folder: {'; '.join(problems)}")

    def __len__(self) -> int:
        return len(self.docids)

    def document(self, i: int) -> np.ndarray:
        """The ``[K', H]`` vectors of document ``i``."""
        return np.asarray(self.vectors[self.offsets[i] : self.offsets[i + 1]])

    def batch(self, begin: int, stop: int) -> dict[str, list]:
        """Documents ``begin..stop-1`` as a writer batch (``id``, ``vector``), from one contiguous read."""
        block = read_rows(self.vectors, int(self.offsets[begin]), int(self.offsets[stop]))
        local = self.offsets[begin : stop + 1] - self.offsets[begin]
        return {
            "id": self.docids[begin:stop],
            "vector": [block[local[i] : local[i + 1]] for i in range(stop - begin)],
        }


def merge_multivector(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    manifest_extra: Mapping[str, Any] | None = None,
    docs_per_step: int = 4096,
) -> int:
    """Concatenate multi-vector shard folders (in order) into ``output``; return the document count."""
    first = MultiVectorFolder(inputs[0])
    writer = MultiVectorWriter(
        output,
        first.manifest["encoder"],
        dtype=first.manifest.get("dtype", "float32"),
        dimension=first.manifest["dimension"],
        manifest_extra=manifest_extra,
    )
    with writer:
        for folder in inputs:
            shard = MultiVectorFolder(folder)
            for begin in range(0, len(shard), docs_per_step):
                writer.write(shard.batch(begin, min(begin + docs_per_step, len(shard))))
            writer.copy_skipped_report(folder)
    return writer.num_docs

"""Read-only access to a multi-vector index folder (``vectors.npy`` + ``offsets.npy`` + ``docid`` + manifest).

Why separate from the searcher: storage (validation, memory-mapping, gathering a document's rows) is one
concern and retrieval strategy (token index, candidates, exact MaxSim) another, as in PyLate's index/retriever
split; the token-index builder and the searcher both read the collection through this class.

Layout (written by :mod:`pyserini_diffretriever.writers`): ``vectors.npy`` ``[total_vectors, H]`` float32 or
float16, ``offsets.npy`` int64 ``[N + 1]`` (document ``i`` owns rows ``offsets[i]:offsets[i+1]``), ``docid``
(one id per line, in document order) and ``manifest.json`` with ``kind == "multi"``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .index_format import (
    DOCID_FILE,
    OFFSETS_FILE,
    VECTORS_FILE,
    IndexFormatError,
    read_docids,
    read_manifest,
)
from .scoring import docid_tie_ranks, iter_doc_chunks

logger = logging.getLogger(__name__)

_VECTOR_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))


class DocumentRows:
    """What float and compressed storage share: document ``i`` owns rows ``offsets[i]:offsets[i+1]``.

    Subclasses set ``offsets`` and ``docids`` and implement ``_rows(index array or slice) -> float32 rows``
    (the vectors themselves, or decoded codes).
    """

    offsets: np.ndarray
    docids: list[str]

    def _rows(self, rows: np.ndarray | slice) -> np.ndarray:
        raise NotImplementedError

    @cached_property
    def tie_ranks(self) -> np.ndarray:
        """``[N]`` rank of each docid in string order, the tie-break key."""
        return docid_tie_ranks(self.docids)

    def docs_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Owning document index of each vector row."""
        return np.searchsorted(self.offsets, np.asarray(rows, dtype=np.int64), side="right") - 1

    def gather(self, doc_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of some documents, concatenated, as float32, and ``local_offsets [len(doc_indices) + 1]``.

        Sorted ``doc_indices`` read the storage sequentially.
        """
        docs = np.asarray(doc_indices, dtype=np.int64)
        starts, ends = self.offsets[docs], self.offsets[docs + 1]
        lengths = ends - starts
        local = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=local[1:])
        rows = np.arange(local[-1], dtype=np.int64) + np.repeat(starts - local[:-1], lengths)
        return self._rows(rows), local

    def iter_chunks(self, max_rows: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Yield ``(first_doc, end_doc, rows float32, local_offsets)`` over the collection, ``max_rows`` at a time."""
        for start, end in iter_doc_chunks(self.offsets, max_rows):
            lo, hi = self.offsets[start], self.offsets[end]
            yield start, end, self._rows(slice(lo, hi)), self.offsets[start : end + 1] - lo


class MultiVectorIndex(DocumentRows):
    """A validated, memory-mapped multi-vector index.

    Parameters
    ----------
    index_dir : str or Path
        The index folder.
    mmap : bool
        Memory-map ``vectors.npy`` (default) instead of reading it into memory.

    Raises
    ------
    IndexFormatError
        If a file is missing or the files disagree with each other or with the manifest.
    """

    def __init__(self, index_dir: str | Path, mmap: bool = True) -> None:
        self.index_dir = Path(index_dir)
        self.manifest: dict[str, Any] = read_manifest(self.index_dir)
        if self.manifest["kind"] != "multi":
            raise IndexFormatError(f"{self.index_dir}: manifest kind is {self.manifest['kind']!r}, expected 'multi'")
        self.vectors: np.ndarray = self._load(VECTORS_FILE, mmap_mode="r" if mmap else None)
        self.offsets: np.ndarray = np.asarray(self._load(OFFSETS_FILE, mmap_mode=None), dtype=np.int64)
        self.docids: list[str] = read_docids(self.index_dir / DOCID_FILE)
        self._validate()

    def _load(self, name: str, mmap_mode: str | None) -> np.ndarray:
        path = self.index_dir / name
        if not path.is_file():
            raise IndexFormatError(
                f"{path}: missing (a multi-vector index needs {VECTORS_FILE}, {OFFSETS_FILE}, "
                f"{DOCID_FILE} and the manifest)"
            )
        try:
            return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{path}: not a readable .npy array ({error})") from error

    def _validate(self) -> None:
        where = self.index_dir
        if self.vectors.ndim != 2:
            raise IndexFormatError(f"{where / VECTORS_FILE}: expected a 2-D array, got shape {self.vectors.shape}")
        if self.vectors.dtype not in _VECTOR_DTYPES:
            raise IndexFormatError(f"{where / VECTORS_FILE}: dtype {self.vectors.dtype} is not float32 or float16")
        offsets = self.offsets
        if offsets.ndim != 1 or len(offsets) < 1:
            raise IndexFormatError(f"{where / OFFSETS_FILE}: expected a 1-D array of N + 1 offsets")
        if offsets[0] != 0 or offsets[-1] != self.vectors.shape[0] or np.any(np.diff(offsets) < 0):
            raise IndexFormatError(
                f"{where / OFFSETS_FILE}: offsets must start at 0, never decrease and end at the number of vectors "
                f"({self.vectors.shape[0]}); got first {offsets[0]}, last {offsets[-1]}"
            )
        if len(self.docids) != self.num_docs:
            raise IndexFormatError(
                f"{where / DOCID_FILE}: {len(self.docids)} docids for {self.num_docs} documents in {OFFSETS_FILE}"
            )
        for key, actual in (
            ("num_docs", self.num_docs),
            ("dimension", self.dimension),
            ("num_vectors", self.num_vectors),
        ):
            expected = self.manifest.get(key)
            if expected is not None and expected != actual:
                raise IndexFormatError(f"{where}: manifest says {key}={expected}, the files hold {actual}")

    @property
    def num_docs(self) -> int:
        """Number of documents ``N``."""
        return len(self.offsets) - 1

    @property
    def num_vectors(self) -> int:
        """Number of stored vectors (rows of ``vectors.npy``)."""
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        """Vector dimension ``H``."""
        return int(self.vectors.shape[1])

    @property
    def encoder_settings(self) -> dict[str, Any]:
        """The manifest's ``encoder`` settings."""
        return self.manifest.get("encoder", {})

    def _rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """Stored rows (an index array or a slice) as float32 search rows."""
        return np.asarray(self.vectors[rows], dtype=np.float32)

    def iter_vector_blocks(self, block_rows: int) -> Iterator[np.ndarray]:
        """Yield the vectors as float32 blocks of at most ``block_rows`` rows (for building token indexes)."""
        for lo in range(0, self.num_vectors, max(int(block_rows), 1)):
            yield np.ascontiguousarray(self.vectors[lo : lo + block_rows], dtype=np.float32)

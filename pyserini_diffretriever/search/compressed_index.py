"""Read-only access to a compressed multi-vector folder (``codec.faiss`` + ``codes.npy`` + offsets + docids).

Why it mirrors :class:`~.multivector_index.MultiVectorIndex`: the searcher's strategy (token hits, candidate
bounds, MaxSim re-scoring, exhaustive mode) does not care whether a document's rows come from float vectors
or from decoded codes. This class offers the same storage interface -- ``gather``, ``iter_chunks``,
``docs_of_rows``, ``tie_ranks`` -- with two differences the searcher asks about:

- rows live in the codec's *projected* space, so query vectors go through :meth:`project` first
  (``search_dimension`` is the projected size, ``dimension`` the hidden size the query encoder produces);
- the token index is not built from the vectors but filled from the stored codes
  (:meth:`token_index`: FAISS ``add_sa_codes`` into the codec's trained IVF), so search never reads a float
  vector. Its memory is ``code_size + 8`` bytes per vector.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..indexing.codec import MultiVectorCodec
from ..layouts import CODEC_FILE, CODES_FILE
from .index_format import DOCID_FILE, OFFSETS_FILE, IndexFormatError, read_docids, read_manifest
from .multivector_index import DocumentRows

logger = logging.getLogger(__name__)

ADD_BLOCK_ROWS = 262_144
"""Codes added to the search structure per call (bounded temporary memory)."""


class CompressedMultiVectorIndex(DocumentRows):
    """A validated compressed multi-vector index (see the module docstring).

    Parameters
    ----------
    index_dir : str or Path
        Folder written by :class:`~pyserini_diffretriever.writers.compressed.CompressedMultiVectorWriter`.

    Raises
    ------
    IndexFormatError
        A missing file, another kind, or files that disagree with each other or with the manifest.
    """

    compressed = True

    def __init__(self, index_dir: str | Path) -> None:
        self.index_dir = Path(index_dir)
        self.manifest: dict[str, Any] = read_manifest(self.index_dir)
        if self.manifest["kind"] != "multi-compressed":
            raise IndexFormatError(
                f"{self.index_dir}: manifest kind is {self.manifest['kind']!r}, expected 'multi-compressed'"
            )
        try:
            self.codec = MultiVectorCodec.load(self.index_dir / CODEC_FILE)
            self.codes: np.ndarray = np.load(self.index_dir / CODES_FILE, mmap_mode="r", allow_pickle=False)
            self.offsets = np.asarray(np.load(self.index_dir / OFFSETS_FILE, allow_pickle=False), dtype=np.int64)
        except (OSError, ValueError) as error:
            raise IndexFormatError(f"{self.index_dir}: unreadable compressed multi-vector index ({error})") from error
        self.docids: list[str] = read_docids(self.index_dir / DOCID_FILE)
        if self.codes.ndim != 2 or self.codes.shape[1] != self.codec.code_size or self.codes.dtype != np.uint8:
            raise IndexFormatError(
                f"{self.index_dir / CODES_FILE}: {self.codes.dtype} {list(self.codes.shape)}, expected uint8 "
                f"[n, {self.codec.code_size}] for {CODEC_FILE}"
            )
        if len(self.offsets) != len(self.docids) + 1 or self.offsets[-1] != len(self.codes):
            raise IndexFormatError(f"{self.index_dir}: offsets, docids and codes.npy disagree")

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_vectors(self) -> int:
        return int(self.codes.shape[0])

    @property
    def dimension(self) -> int:
        """The hidden size of the query vectors this index accepts."""
        return self.codec.dimension

    @property
    def search_dimension(self) -> int:
        """The size of the rows :meth:`gather` returns (the codec's projected space)."""
        return self.codec.reduced_dimension

    @property
    def encoder_settings(self) -> dict[str, Any]:
        return self.manifest.get("encoder", {})

    def project(self, query_vectors: np.ndarray) -> np.ndarray:
        """Query vectors ``[K, H]`` -> the projected space the stored rows live in."""
        return self.codec.project(query_vectors)

    def _rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """Decoded codes (projected space)."""
        return self.codec.decode(self.codes[rows])

    @cached_property
    def list_numbers(self) -> np.ndarray:
        """``[num_vectors]`` IVF list (centroid) of every stored vector: the first bytes of its code."""
        coarse = int(self.codec.ivf.coarse_code_size())
        lists = np.zeros(self.num_vectors, dtype=np.int64)
        for lo in range(0, self.num_vectors, ADD_BLOCK_ROWS):
            head = np.asarray(self.codes[lo : lo + ADD_BLOCK_ROWS, :coarse], dtype=np.int64)
            lists[lo : lo + len(head)] = (head << (8 * np.arange(coarse, dtype=np.int64))).sum(axis=1)
        return lists.astype(np.int32 if self.codec.nlist < 2**31 else np.int64)

    @cached_property
    def centroids(self) -> np.ndarray:
        """``[nlist, search_dimension]`` IVF centroids in the projected space."""
        quantizer = self.codec.ivf.quantizer
        return quantizer.reconstruct_n(0, quantizer.ntotal)

    def centroid_scores(self, projected_query: np.ndarray) -> np.ndarray:
        """PLAID's centroid interaction: ``sum_i max(0, max_j q_i . c(d_j))`` for every document ``[N]``.

        Each stored vector stands in for its centroid, so the whole collection is scored from a ``[K_q, nlist]``
        table and one list number per vector, without decoding any residual.
        """
        table = projected_query @ self.centroids.T  # [K_q, nlist]
        per_vector = table[:, self.list_numbers]  # [K_q, num_vectors]
        starts = self.offsets[:-1]
        empty = self.offsets[1:] == starts
        best = np.maximum.reduceat(per_vector, np.minimum(starts, max(self.num_vectors - 1, 0)), axis=1)
        best[:, empty] = 0.0
        return np.maximum(best, 0.0).sum(axis=0)

    def token_index(self) -> Any:
        """The codec's IVF filled with every stored code (ids = row numbers), for candidate generation."""
        index = self.codec.empty_search_index()
        for lo in range(0, self.num_vectors, ADD_BLOCK_ROWS):
            block = np.ascontiguousarray(self.codes[lo : lo + ADD_BLOCK_ROWS])
            index.add_sa_codes(block, np.arange(lo, lo + len(block), dtype=np.int64))
        return index

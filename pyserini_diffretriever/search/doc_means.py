"""Per-document mean vectors of a multi-vector index: the cheap first candidate source of MaxSim search.

Why: a document's K vectors come from one forward pass over one text and resemble each other, so the mean of
its (non-zero) vectors -- the paper's ``single_dense`` representation -- ranks documents close to MaxSim. An
exact inner-product search over ``N`` means costs ``1 / (K_d x K_q)`` of exhaustive MaxSim; its top documents,
re-scored exactly, recover the MaxSim top-k with high recall (see :class:`~.multivector.MultiVectorSearcher`).
Stored as ``doc_means.npy`` (dtype of ``vectors.npy``) with ``doc_means.json`` recording which vectors it was
computed from; computed on the searcher's first open when missing or stale.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..writers.atomic import atomic_write
from .index_format import vectors_fingerprint
from .multivector_index import MultiVectorIndex
from .scoring import masked_means

logger = logging.getLogger(__name__)

DOC_MEANS_FILE = "doc_means.npy"
DOC_MEANS_META_FILE = "doc_means.json"
CHUNK_ROWS = 1 << 16


def compute_doc_means(index: MultiVectorIndex) -> np.ndarray:
    """``[N, H]`` masked means of every document, streamed over the memory-mapped vectors."""
    means = np.zeros((index.num_docs, index.dimension), dtype=np.float32)
    for start, end, rows, local in index.iter_chunks(CHUNK_ROWS):
        means[start:end] = masked_means(rows, local)
    return means


def _fingerprint(index: MultiVectorIndex) -> dict[str, int]:
    return {"num_docs": index.num_docs, **vectors_fingerprint(index.index_dir, index.num_vectors, index.dimension)}


def build_doc_means(index_dir: str | Path) -> Path:
    """Compute and write ``doc_means.npy`` (and its description) for a multi-vector index folder."""
    index = MultiVectorIndex(index_dir)
    _write(index, compute_doc_means(index))
    return index.index_dir / DOC_MEANS_FILE


def _write(index: MultiVectorIndex, means: np.ndarray) -> None:
    folder = index.index_dir

    def save(path: str) -> None:
        with open(path, "wb") as handle:  # a file object: np.save would append ".npy" to the temporary name
            np.save(handle, means.astype(index.vectors.dtype))

    atomic_write(folder / DOC_MEANS_FILE, save)
    atomic_write(
        folder / DOC_MEANS_META_FILE,
        lambda path: Path(path).write_text(json.dumps(_fingerprint(index), indent=2) + "\n"),
    )


def load_doc_means(index: MultiVectorIndex, write: bool = True) -> np.ndarray:
    """The document means of ``index`` (memory-mapped from disk, or computed and, if possible, written)."""
    folder = index.index_dir
    meta = folder / DOC_MEANS_META_FILE
    if meta.is_file() and (folder / DOC_MEANS_FILE).is_file():
        try:
            recorded = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            logger.warning("%s: unreadable (%s); recomputing the document means", meta, error)
            recorded = None
        if recorded == _fingerprint(index):
            return np.load(folder / DOC_MEANS_FILE, mmap_mode="r", allow_pickle=False)
        if recorded is not None:
            logger.warning("%s: document means were computed from other vectors; recomputing", folder)
    means = compute_doc_means(index)
    if write:
        try:
            _write(index, means)
        except OSError as error:
            logger.warning("%s: cannot write %s (%s); keeping it in memory", folder, DOC_MEANS_FILE, error)
    return means

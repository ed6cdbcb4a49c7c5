"""Dense vectors -> a FAISS folder that :class:`pyserini.search.faiss.FaissSearcher` opens as is.

Layout (Pyserini's, see ``FaissSearcher.load_index``)::

    DIR/index          faiss.IndexFlatIP, faiss.write_index
    DIR/docid          one document id per line, in vector order
    DIR/manifest.json  kind "dense" (see :mod:`.manifest`)

Why not Pyserini's ``FaissRepresentationWriter``: it needs the dimension before the first batch (its CLI
defaults to 768) and importing :mod:`pyserini.encode` starts the JVM in Pyserini 2.3. This writer takes the
dimension from the first batch, checks every batch (shape, finite values), and writes the manifest last.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import VectorWriter, WriterError
from .manifest import build_manifest, read_manifest

logger = logging.getLogger(__name__)

INDEX_NAME = "index"
DOCID_NAME = "docid"


class FaissFlatWriter(VectorWriter):
    """Stream ``[B, H]`` float32 batches into an exact inner-product FAISS index plus a ``docid`` file.

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
        self._index = None
        self._docid_file = None

    def _open(self) -> None:
        self._docid_file = open(self.directory / DOCID_NAME, "w", encoding="utf-8")

    def write(self, batch_info: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        """Add ``batch_info["vector"]`` (``[B, H]``) for the ids ``batch_info["id"]``."""
        ids = self._check_ids(batch_info)
        vectors = np.asarray(batch_info["vector"])
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise WriterError(f"dense batch must have shape [{len(ids)}, H], got {list(vectors.shape)} "
                              f"(first id {ids[0]!r})")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise WriterError(f"dense vector of document {ids[int(np.argmax(bad))]!r} has NaN or infinite values")
        self._add(ids, vectors)

    def _add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        import faiss

        if self._index is None:
            if self.dimension is None:
                self.dimension = int(vectors.shape[1])
            self._index = faiss.IndexFlatIP(self.dimension)
        if vectors.shape[1] != self.dimension:
            raise WriterError(f"dense vectors have dimension {vectors.shape[1]}, expected {self.dimension} "
                              f"(first id {ids[0]!r})")
        self._index.add(vectors)
        self._docid_file.writelines(f"{docid}\n" for docid in ids)
        self.num_docs += len(ids)

    def _close(self, success: bool) -> None:
        import faiss

        if self._docid_file is not None:
            self._docid_file.close()
        if not success:
            return
        if self._index is None:
            raise WriterError(f"{self.directory}: no documents were written")
        faiss.write_index(self._index, str(self.directory / INDEX_NAME))
        self._index = None

    def _manifest(self) -> dict[str, Any]:
        return build_manifest("dense", self.encoder_settings, self.num_docs, dimension=self.dimension,
                              shard=self.shard, index_type="IndexFlatIP", metric="inner_product",
                              **self.manifest_extra)


def read_faiss_docids(directory: str | os.PathLike) -> list[str]:
    """The ``docid`` file of a dense folder, exactly as ``FaissSearcher.load_docids`` reads it."""
    with open(Path(directory) / DOCID_NAME, encoding="utf-8") as handle:
        return [line.rstrip() for line in handle]


def merge_faiss(inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                manifest_extra: Mapping[str, Any] | None = None) -> int:
    """Concatenate dense shard folders (in the given order) into ``output``; return the document count."""
    import faiss

    first = read_manifest(inputs[0], "dense")
    writer = FaissFlatWriter(output, first["encoder"], dimension=first["dimension"], manifest_extra=manifest_extra)
    with writer:
        for folder in inputs:
            index = faiss.read_index(str(Path(folder) / INDEX_NAME))
            ids = read_faiss_docids(folder)
            if index.ntotal != len(ids):
                raise WriterError(f"{folder}: index holds {index.ntotal} vectors but docid lists {len(ids)} ids")
            step = 65536
            for begin in range(0, len(ids), step):
                stop = min(begin + step, len(ids))
                writer.write({"id": ids[begin:stop], "vector": index.reconstruct_n(begin, stop - begin)})
    return writer.num_docs

"""Compressed multi-vector folders: codec codes instead of float vectors, written with flat memory use.

Layout (kind ``multi-compressed``)::

    DIR/codec.faiss    the trained codec (projection + IVF residual quantiser), see indexing.codec
    DIR/codes.npy      [total_vectors, code_size] uint8, rows of document i are offsets[i]:offsets[i+1]
    DIR/offsets.npy    int64 [N + 1]
    DIR/docid          one id per line, document order
    DIR/manifest.json  kind "multi-compressed", dimension, reduced_dimension, code_size, codec facts

Why a subclass of :class:`~.multivector.MultiVectorWriter`: documents arrive, are checked and are appended
exactly as for float vectors -- same offsets, docids, checkpoints and resume -- only each row is the codec's
code (``code_size`` bytes, e.g. 258) instead of ``H`` floats (7,168 bytes as float16 at ``H = 3584``). The codec
is written first, as a closed file of the checkpoint state, so a resumed run keeps it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..layouts import CODEC_FILE, CODES_FILE
from .manifest import build_manifest
from .multivector import MultiVectorWriter


class CompressedMultiVectorWriter(MultiVectorWriter):
    """Stream per-document ``[K', H]`` matrices into codec codes (``codes.npy``) + ``offsets.npy`` + ``docid``.

    Parameters
    ----------
    directory : str or PathLike
        Output folder (created; must be empty).
    codec : MultiVectorCodec
        A trained :class:`~pyserini_diffretriever.indexing.codec.MultiVectorCodec`; its input dimension must be
        the documents' ``H``.
    encoder_settings, shard, manifest_extra
        As for :class:`~.multivector.MultiVectorWriter`.
    codec_facts : mapping, optional
        Training facts stored in the manifest's ``codec`` record (factory, sample size, energy kept).
    """

    kind = "multi-compressed"
    ROWS_NAME = CODES_FILE

    def __init__(
        self,
        directory: str | os.PathLike,
        codec: Any,
        encoder_settings: Mapping[str, Any] | None = None,
        shard: tuple[int, int] = (0, 1),
        manifest_extra: Mapping[str, Any] | None = None,
        codec_facts: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(directory, encoder_settings, "float32", codec.dimension, shard, manifest_extra)
        self.codec = codec
        self.codec_facts = dict(codec_facts or {})

    def _open(self) -> None:
        import faiss

        handle = self._append_file(CODEC_FILE)
        handle.write(faiss.serialize_index(self.codec.index).tobytes())
        self._close_file(CODEC_FILE)
        super()._open()

    def _stored_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.codec.encode(rows)

    def _row_layout(self) -> tuple[np.dtype, int]:
        return np.dtype(np.uint8), self.codec.code_size

    def _manifest(self) -> dict[str, Any]:
        codec_bytes = (self.directory / CODEC_FILE).read_bytes()
        return build_manifest(
            self.kind,
            self.encoder_settings,
            self.num_docs,
            dimension=self.dimension,
            shard=self.shard,
            num_vectors=self.num_vectors,
            code_size=self.codec.code_size,
            codec={
                **self.codec.describe(),
                **self.codec_facts,
                "sha256": hashlib.sha256(codec_bytes).hexdigest(),
            },
            **self.manifest_extra,
        )

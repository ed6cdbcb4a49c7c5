"""``DiffRetrieverQueryEncoder``: a :class:`pyserini.encode.QueryEncoder` for FAISS, impact and MaxSim search.

* ``FaissSearcher`` calls :meth:`encode` (1-D float32 vector) or :meth:`encode_batch` (``[n, H]``);
* ``LuceneImpactSearcher`` calls ``encode(query)`` and needs ``{term: int}`` with plain Python ints;
* the multi-vector searcher gets ``[K', H]`` float32 arrays.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from pyserini.encode import QueryEncoder

from ..backbones.base import LoadedBackbone
from ..representation.prompts import PromptTemplate
from .document import _pop_model_name
from .model import DiffRetrieverModel, RepresentationBatch, SideEncoder


class DiffRetrieverQueryEncoder(QueryEncoder):
    """Encode queries with a diffusion LM's K representative tokens (DiffRetriever).

    Same constructor as :class:`~pyserini_diffretriever.encoders.document.DiffRetrieverDocumentEncoder`
    (``k`` is the query K_q: default 4 for Dream and LLaDA; the query prompt YAMLs are used). To share the
    weights with a document encoder pass ``document_encoder.model`` as ``model_name_or_path``.
    """

    side = "query"

    def __init__(
        self,
        model_name_or_path: "str | os.PathLike | LoadedBackbone | DiffRetrieverModel | None" = None,
        representation: str = "dense",
        k: int | None = None,
        prompt: str | Path | PromptTemplate = "few",
        max_length: int = 512,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        adapter: str | os.PathLike | None = None,
        batch_size: int = 16,
        logits: str = "unshifted",
        denoise_steps: int = 1,
        title_separator: str = ". ",
        sparse_top_k: int = 128,
        quantization: float = 100,
        rounding: str = "truncate",
        **kwargs,
    ) -> None:
        model_name_or_path = _pop_model_name(model_name_or_path, kwargs, type(self).__name__)
        super().__init__()
        self._side = SideEncoder(
            model_name_or_path, self.side, representation=representation, k=k, prompt=prompt,
            max_length=max_length, device=device, dtype=dtype, adapter=adapter, batch_size=batch_size,
            logits=logits, denoise_steps=denoise_steps, title_separator=title_separator,
            sparse_top_k=sparse_top_k, quantization=quantization, rounding=rounding,
        )
        self.has_model = True

    @property
    def model(self) -> DiffRetrieverModel:
        return self._side.model

    @property
    def representation(self) -> str:
        return self._side.representation

    @property
    def k(self) -> int:
        return self._side.k

    @property
    def dimension(self) -> int:
        return self._side.dimension

    def _select(self, batch: RepresentationBatch):
        if self.representation == "dense":
            return batch.dense
        if self.representation == "multi":
            return batch.multi
        return batch.impact

    def encode(self, query: str, **kwargs):
        """Encode one query.

        Returns
        -------
        np.ndarray | dict[str, int]
            1-D ``[H]`` float32 (dense), ``[K', H]`` float32 (multi) or ``{term: int}`` (impact).
        """
        if not isinstance(query, str):
            raise TypeError(f"{type(self).__name__}.encode expects one query string, "
                            f"got {type(query).__name__}")
        return self._select(self._side.encode([query], representations=(self.representation,)))[0]

    def encode_batch(self, queries: Sequence[str], **kwargs):
        """Encode many queries in batches: ``[n, H]`` float32 (dense) or a list (multi / impact)."""
        return self._select(self._side.encode(list(queries), representations=(self.representation,)))

    def encode_all(self, queries: Sequence[str]) -> RepresentationBatch:
        """Dense, multi and impact representations of the queries from one forward pass per batch."""
        return self._side.encode(list(queries))

    def settings(self) -> dict:
        """The query-side settings (compare with the index's document-side settings)."""
        return self._side.settings()


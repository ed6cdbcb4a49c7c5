"""What the document and query encoder classes share: one constructor, one settings object, one selector.

Pyserini's encoder contracts are two unrelated base classes (``DocumentEncoder``, ``QueryEncoder``); this
mixin sits in front of either so both expose the same keyword arguments, validated once by
:class:`~pyserini_diffretriever.encoders.model.SideEncoder`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..backbones.base import LoadedBackbone
from ..representation.prompts import PromptTemplate
from .model import DiffRetrieverModel, RepresentationBatch, SideEncoder


def _pop_model_name(model_name_or_path, kwargs: dict, cls_name: str):
    """Accept Pyserini's ``model_name=`` spelling and reject any other unknown keyword."""
    alias = kwargs.pop("model_name", None)
    if alias is not None:
        if model_name_or_path is not None:
            raise TypeError(f"{cls_name}: give model_name_or_path or model_name, not both")
        model_name_or_path = alias
    if kwargs:
        raise TypeError(f"{cls_name}: unexpected keyword arguments {sorted(kwargs)}")
    if model_name_or_path is None:
        raise TypeError(f"{cls_name}: model_name_or_path is required")
    return model_name_or_path


class SideEncoderMixin:
    """Constructor and accessors shared by the two Pyserini encoder classes (``side`` set by each)."""

    side: str

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | LoadedBackbone | DiffRetrieverModel | None = None,
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
        super().__init__()  # the Pyserini base class (QueryEncoder sets its lookup-table attributes)
        self._side = SideEncoder(
            model_name_or_path,
            self.side,
            representation=representation,
            k=k,
            prompt=prompt,
            max_length=max_length,
            device=device,
            dtype=dtype,
            adapter=adapter,
            batch_size=batch_size,
            logits=logits,
            denoise_steps=denoise_steps,
            title_separator=title_separator,
            sparse_top_k=sparse_top_k,
            quantization=quantization,
            rounding=rounding,
        )
        self.has_model = True  # Pyserini's QueryEncoder flag: vectors come from a model, not a lookup table

    @property
    def model(self) -> DiffRetrieverModel:
        """The shared model (pass it to another encoder to reuse the weights)."""
        return self._side.model

    @property
    def representation(self) -> str:
        return self._side.representation

    @property
    def k(self) -> int:
        return self._side.k

    @property
    def dimension(self) -> int:
        """Hidden size H (the FAISS dimension of dense vectors)."""
        return self._side.dimension

    def _select(self, batch: RepresentationBatch):
        """This encoder's representation out of a batch holding all three."""
        if self.representation == "dense":
            return batch.dense
        if self.representation == "multi":
            return batch.multi
        return batch.impact

    def settings(self) -> dict:
        """What an index records / a query must match (backbone, vocabulary hash, K, prompt, ...)."""
        return self._side.settings()

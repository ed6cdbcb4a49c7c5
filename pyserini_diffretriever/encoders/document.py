"""``DiffRetrieverDocumentEncoder``: a :class:`pyserini.encode.DocumentEncoder` for passages.

Importing this module imports :mod:`pyserini.encode`, which (in Pyserini 2.3) starts the JVM; the package
root prepares Java first (:mod:`pyserini_diffretriever._java`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from pyserini.encode import DocumentEncoder

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


class DiffRetrieverDocumentEncoder(DocumentEncoder):
    """Encode passages with a diffusion LM's K representative tokens (DiffRetriever).

    Parameters
    ----------
    model_name_or_path:
        Checkpoint folder or hub id (Dream / LLaDA), or a shared :class:`DiffRetrieverModel` /
        :class:`LoadedBackbone` (then ``device``, ``dtype`` and ``adapter`` are ignored). Pyserini's
        ``model_name=`` keyword is accepted as an alias.
    representation:
        What :meth:`encode` returns: ``"dense"`` (``[B, H]`` float32 single vectors for FAISS),
        ``"multi"`` (per passage ``[K', H]`` float32 normalised vectors for MaxSim) or ``"impact"``
        (per passage ``{term: int}`` for Lucene impact indexes).
    k:
        Passage mask slots K_p; default per backbone (Dream 16, LLaDA 4).
    prompt:
        ``"one"``, ``"few"`` (default) or ``"three"``, or a YAML path with the four prompt keys.
    max_length:
        Token budget for prompt + passage text (the K masks and 3 tail tokens come on top).
    device, dtype, adapter:
        Where and how to load the backbone; ``adapter`` is an optional LoRA adapter merged after loading.
    batch_size:
        Passages per forward pass inside one :meth:`encode` call.
    logits:
        ``"unshifted"`` (reference) or ``"shifted"`` (Dream's next-token alignment; ablation).
    denoise_steps:
        S >= 1 (1 = the paper's single pass).
    title_separator:
        ``title + title_separator + text`` when titles are given.
    sparse_top_k, quantization, rounding:
        Impact settings: top entries per slot, integer scale, ``"truncate"`` (reference) or ``"round"``.
    """

    side = "passage"

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
        self._side = SideEncoder(
            model_name_or_path, self.side, representation=representation, k=k, prompt=prompt,
            max_length=max_length, device=device, dtype=dtype, adapter=adapter, batch_size=batch_size,
            logits=logits, denoise_steps=denoise_steps, title_separator=title_separator,
            sparse_top_k=sparse_top_k, quantization=quantization, rounding=rounding,
        )

    @property
    def model(self) -> DiffRetrieverModel:
        """The shared model (pass it to a query encoder to reuse the weights)."""
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

    def encode(self, texts: Sequence[str], titles: Sequence[str | None] | None = None,
               max_length: int | None = None, fp16: bool = False, **kwargs):
        """Encode a batch of passages in this encoder's representation.

        Parameters
        ----------
        texts, titles:
            Passage texts and optional titles (Pyserini's ``--fields title text``).
        max_length:
            Overrides the constructor's budget for this call.
        fp16:
            Float16 autocast on CUDA; on CPU a warning is logged and the dtype is kept.
        **kwargs:
            Ignored (Pyserini's CLI passes e.g. ``add_sep`` and one list per extra field).

        Returns
        -------
        np.ndarray | list[np.ndarray] | list[dict[str, int]]
            ``[B, H]`` float32 (dense), per passage ``[K', H]`` float32 (multi), or ``{term: int}`` (impact).
        """
        batch = self._side.encode(texts, titles, max_length=max_length, fp16=fp16,
                                  representations=(self.representation,))
        if self.representation == "dense":
            return batch.dense
        if self.representation == "multi":
            return batch.multi
        return batch.impact

    def encode_all(self, texts: Sequence[str], titles: Sequence[str | None] | None = None,
                   max_length: int | None = None, fp16: bool = False) -> RepresentationBatch:
        """Dense, multi and impact representations of the passages from one forward pass per batch."""
        return self._side.encode(texts, titles, max_length=max_length, fp16=fp16)

    def settings(self) -> dict:
        """What an index built with this encoder records (backbone, vocabulary hash, K, prompt, …)."""
        return self._side.settings()


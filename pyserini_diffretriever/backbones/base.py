"""The contract every backbone family fulfils.

A backbone turns token ids into post-final-norm hidden states with *bidirectional* attention in which
padding is masked as keys, and applies its vocabulary projection to selected rows only (never to a whole
``[batch, length, vocab]`` tensor). Everything above this layer (input construction, read-out,
representations, encoders) depends only on :class:`Backbone` and :class:`BackboneSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class BackboneSpec:
    """Static facts of a loaded checkpoint that the input layout and read-out need.

    Attributes
    ----------
    model_type:
        The ``model_type`` of ``config.json`` (the registry key), e.g. ``"Dream"`` or ``"llada"``.
    family:
        ``"diffusion"`` (one bidirectional pass reads K mask slots) or ``"autoregressive"``.
    mask_token_id:
        The diffusion mask id (Dream 151666, LLaDA 126336); ``None`` for autoregressive models.
    pad_token_id, eos_token_id:
        Padding id (left padding) and end-of-sequence id used in the tail.
    chat_end_token_id:
        The chat end-of-turn id (Dream ``<|im_end|>``, LLaDA ``<|eot_id|>``), ``None`` if absent.
    hidden_size, vocab_size:
        Width of the hidden states and of the vocabulary projection.
    logits_shifted:
        True when the model's logits at position i predict token i+1 (Dream keeps Qwen's next-token
        alignment); False for LLaDA. Read-out uses this only when the user asks for shifted logits.
    name_or_path:
        What the user passed (hub id or local directory), recorded in manifests.
    """

    model_type: str
    family: str
    mask_token_id: int | None
    pad_token_id: int
    eos_token_id: int
    chat_end_token_id: int | None
    hidden_size: int
    vocab_size: int
    logits_shifted: bool
    name_or_path: str
    revision: str | None = None
    adapter: str | None = None
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Backbone(Protocol):
    """What representation code calls on a backbone module (an ``nn.Module``)."""

    spec: BackboneSpec

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` ids + ``[B, L]`` 0/1 mask (left padded) -> post-final-norm ``[B, L, H]``.

        Attention is bidirectional; padded positions are masked as keys, and position ids count real
        tokens only, so a text's states do not depend on how much padding its batch has.
        """

    def vocab_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the LM head to ``[..., H]`` states -> ``[..., V]`` logits (only the rows given)."""


@dataclass
class LoadedBackbone:
    """A ready backbone: the module (in eval mode, on its device), its tokenizer and its spec."""

    model: Backbone  # an nn.Module implementing the Backbone protocol
    tokenizer: object  # a transformers PreTrainedTokenizerBase (left padding set by the loader)
    spec: BackboneSpec

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device  # type: ignore[attr-defined]

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype  # type: ignore[attr-defined]

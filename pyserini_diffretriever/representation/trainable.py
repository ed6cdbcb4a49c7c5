"""Differentiable slot representations for fine-tuning (docs/method.md §8.1).

Why a separate read-out: the encoders' :func:`~.readout.read_out` runs without gradients, truncates slots at stop
tokens and quantises impacts; the training loss needs the same quantities *with* gradients and without those
inference-only steps (the reference trains without stop truncation or quantisation). Everything else is the
encoders' own code: the slot positions of :class:`~.inputs.EncodedBatch`, the logit alignment of
:func:`~.readout.logits_shift`, the L2 normalisation of :mod:`.dense` and the content filter and activation of
:mod:`.sparse` (:func:`~.sparse.pooled_content_weights`).

Diffusion backbones: one bidirectional pass; the K mask rows give the dense vectors, the vocabulary projection
of the same rows (or of the rows before them, ``"shifted"``) the sparse weights. Only S = 1 (the paper's setting).

Autoregressive backbones (PromptReps, docs/method.md §9): as the reference's trainable PromptReps, the K-1
representative tokens are generated greedily without gradients (:func:`~.generation.generate_representatives`,
no stop truncation), appended to the prompt, and one causal pass with gradients reads the last K positions
(the quote and the K-1 generated tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .dense import l2_normalize
from .generation import generate_representatives
from .inputs import EncodedBatch
from .readout import logits_chunk_rows, logits_shift
from .sparse import pooled_content_weights

DEFAULT_MAX_LOGITS_BYTES = 512 * 2**20


@dataclass
class TrainableRepresentations:
    """The representations of a batch of texts, with gradients.

    Attributes
    ----------
    dense:
        ``[B, K, H]`` fp32 L2-normalised slot vectors.
    sparse_ids:
        ``[B, C]`` int64 content ids of each text (padding: any id with weight 0).
    sparse_weights:
        ``[B, C]`` fp32 ``log(1 + relu(max_k logit))`` at those ids (0 on padding and the mask id).
    """

    dense: torch.Tensor
    sparse_ids: torch.Tensor
    sparse_weights: torch.Tensor

    def select(self, rows: torch.Tensor | slice | list[int]) -> TrainableRepresentations:
        """The representations of some rows (e.g. to drop padding partners in tests)."""
        return TrainableRepresentations(self.dense[rows], self.sparse_ids[rows], self.sparse_weights[rows])


def slot_states(backbone, batch: EncodedBatch, *, logits: str = "unshifted") -> tuple[torch.Tensor, torch.Tensor]:
    """``(slot_hidden [B, K, H], logit_hidden [B, K, H])`` of one pass, with gradients.

    ``logit_hidden`` are the rows whose vocabulary projection gives each slot's logits (the slots themselves, or
    the rows before them for ``"shifted"``; for autoregressive backbones always the slots).
    """
    device = next(backbone.parameters()).device
    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
    if batch.autoregressive:
        if logits != "unshifted":
            raise ValueError(f"logits={logits!r}: autoregressive slots are read unshifted")
        if batch.k > 1:
            with torch.no_grad():
                generated = generate_representatives(backbone, batch, batch.k).decoded_ids[:, : batch.k - 1]
            ids = torch.cat([ids, generated.to(device)], dim=1)
            mask = torch.cat([mask, torch.ones_like(generated, device=device, dtype=mask.dtype)], dim=1)
        slots = backbone.hidden_states(ids, mask)[:, -batch.k :]
        return slots, slots
    shift = logits_shift(logits, backbone.spec)
    hidden = backbone.hidden_states(ids, mask)
    start, k = batch.mask_start, batch.k
    return hidden[:, start : start + k], hidden[:, start - shift : start + k - shift]


def trainable_representations(
    backbone,
    batch: EncodedBatch,
    content: tuple[torch.Tensor, torch.Tensor],
    *,
    logits: str = "unshifted",
    max_logits_bytes: int = DEFAULT_MAX_LOGITS_BYTES,
) -> TrainableRepresentations:
    """Dense and sparse training representations of ``batch`` (see the module docstring).

    Parameters
    ----------
    backbone:
        A :class:`~pyserini_diffretriever.backbones.base.Backbone` (possibly with live LoRA layers).
    batch:
        From :class:`~.inputs.InputBuilder` (diffusion or autoregressive layout).
    content:
        ``(ids [B, C], valid [B, C])`` content ids of each text (:func:`~.sparse.pad_content_ids`).
    logits:
        ``"unshifted"`` (reference) or ``"shifted"``.
    max_logits_bytes:
        The ``[rows, K, V]`` fp32 slot logits are computed in row chunks below this size; only the content-id
        columns are kept for the backward pass.
    """
    slot_hidden, logit_hidden = slot_states(backbone, batch, logits=logits)
    device = slot_hidden.device
    content_ids, content_valid = (tensor.to(device) for tensor in content)
    rows, k = slot_hidden.shape[:2]
    chunk = logits_chunk_rows(max_logits_bytes, k, backbone.spec.vocab_size)
    weights = [
        pooled_content_weights(
            backbone.vocab_logits(logit_hidden[lo : lo + chunk]),
            content_ids[lo : lo + chunk],
            content_valid[lo : lo + chunk],
            mask_token_id=backbone.spec.mask_token_id,
        )
        for lo in range(0, rows, chunk)
    ]
    return TrainableRepresentations(l2_normalize(slot_hidden), content_ids, torch.cat(weights))

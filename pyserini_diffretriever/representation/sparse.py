"""Sparse (impact) representation from the K slot logits (docs/method.md §5.1, §5.3).

Per slot k of text x with logits l_k (fp32):

1. keep only the content ids C(x) (:mod:`.content_words`); the mask id is forced to 0;
2. ``w = log(1 + relu(l))`` — written as ``log(1 + x)`` rather than ``log1p(x)`` so the fp32 values, and
   hence the truncated integers, are bit-identical to the reference;
3. the top ``top_k`` (default 128) entries per slot;
4. quantise: ``int(quantization * w)`` (truncation, the zero-shot reference) or ``round`` (the reference's
   trained path); zeros are dropped;
5. slots removed by stop-token truncation contribute nothing;
6. max-pool over slots -> one ``{token_id: int}`` vector per text.

Only the ``|C(x)|`` logits of the content ids are gathered, so step 3 ranks the same non-zero entries as a
top-k over the whole masked vocabulary (entries outside C(x) are exactly 0 there and are dropped anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..settings import DEFAULT_QUANTIZATION

ROUNDING_MODES = ("truncate", "round")


def pad_content_ids(
    content_ids: Sequence[Sequence[int]], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged content-id lists -> ``ids [B, C]`` (int64, padded with 0) and ``valid [B, C]`` (bool)."""
    width = max((len(ids) for ids in content_ids), default=0)
    ids = torch.zeros((len(content_ids), width), dtype=torch.long)
    valid = torch.zeros((len(content_ids), width), dtype=torch.bool)
    for row, row_ids in enumerate(content_ids):
        if row_ids:
            ids[row, : len(row_ids)] = torch.as_tensor(list(row_ids), dtype=torch.long)
            valid[row, : len(row_ids)] = True
    return ids.to(device), valid.to(device)


def activate(logits: torch.Tensor) -> torch.Tensor:
    """The sparse activation ``log(1 + relu(l))`` (step 2), shared by the encoders and the training loss."""
    return torch.log(1 + torch.relu(logits))


def _allowed(content_ids: torch.Tensor, content_valid: torch.Tensor, mask_token_id: int | None) -> torch.Tensor:
    """``[B, C]`` bool: real (non-padding) content ids other than the mask id (step 1)."""
    valid = content_valid.clone()
    if mask_token_id is not None:
        valid &= content_ids != mask_token_id
    return valid


def quantize(
    weights: torch.Tensor, quantization: float = DEFAULT_QUANTIZATION, rounding: str = "truncate"
) -> torch.Tensor:
    """Float impacts -> integer impacts (int32), ``trunc(q*w)`` or ``round(q*w)`` (half to even)."""
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding={rounding!r}: expected one of {ROUNDING_MODES}")
    scaled = weights.float() * quantization
    scaled = torch.trunc(scaled) if rounding == "truncate" else torch.round(scaled)
    return scaled.to(torch.int32)


def slot_impacts(
    logits: torch.Tensor,
    content_ids: torch.Tensor,
    content_valid: torch.Tensor,
    *,
    mask_token_id: int | None,
    top_k: int = 128,
    quantization: float = DEFAULT_QUANTIZATION,
    rounding: str = "truncate",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-slot top-k quantised impacts restricted to each text's content ids.

    Parameters
    ----------
    logits:
        ``[B, K, V]`` slot logits (any float dtype; computed in fp32).
    content_ids, content_valid:
        ``[B, C]`` from :func:`pad_content_ids`.
    mask_token_id:
        Always given weight 0.
    top_k, quantization, rounding:
        See the module docstring.

    Returns
    -------
    ids, weights:
        ``[B, K, T]`` int64 token ids and int32 weights with ``T = min(top_k, C)``; entries with weight 0
        (filtered, non-positive logit, or below ``1/quantization``) are meaningless and must be skipped.
    """
    batch, k, _ = logits.shape
    width = content_ids.shape[1]
    t = min(top_k, width)
    if t == 0:
        empty = torch.zeros((batch, k, 0), dtype=torch.long, device=logits.device)
        return empty, empty.to(torch.int32)
    index = content_ids.unsqueeze(1).expand(batch, k, width)
    gathered = logits.gather(2, index).float()
    valid = _allowed(content_ids, content_valid, mask_token_id)
    activated = activate(gathered) * valid.unsqueeze(1)
    values, positions = activated.topk(t, dim=-1)
    ids = content_ids.unsqueeze(1).expand(batch, k, width).gather(2, positions)
    return ids, quantize(values, quantization, rounding)


def pooled_content_weights(
    logits: torch.Tensor, content_ids: torch.Tensor, content_valid: torch.Tensor, *, mask_token_id: int | None
) -> torch.Tensor:
    """Differentiable, unquantised sparse weights for training (docs/method.md §8.1).

    ``s(x)[c] = log(1 + relu(max_k l_k[c]))`` for every content id ``c`` of the row (the max over slots commutes
    with the monotone activation, so this is also the max-pool of the per-slot activations the encoders keep);
    padding and the mask id get 0. No top-k, no quantisation: every content id keeps its weight.

    Parameters
    ----------
    logits:
        ``[B, K, V]`` slot logits (any float dtype; computed in fp32).
    content_ids, content_valid:
        ``[B, C]`` from :func:`pad_content_ids`.

    Returns
    -------
    torch.Tensor
        ``[B, C]`` fp32 weights aligned with ``content_ids``.
    """
    batch, k, _ = logits.shape
    if content_ids.shape[1] == 0:
        return logits.new_zeros((batch, 0), dtype=torch.float32)
    gathered = logits.gather(2, content_ids.unsqueeze(1).expand(batch, k, content_ids.shape[1])).float()
    return activate(gathered.amax(dim=1)) * _allowed(content_ids, content_valid, mask_token_id)


def sparse_score_matrix(
    query_ids: torch.Tensor, query_weights: torch.Tensor, doc_ids: torch.Tensor, doc_weights: torch.Tensor
) -> torch.Tensor:
    """``[Q, D]`` dot products ``sum_t q[t] d[t]`` of sparse vectors stored as (ids, weights) rows (differentiable).

    Ids must be unique within a row except for padding entries, whose weight must be 0 (as
    :func:`pooled_content_weights` returns them). The rows are scattered into the columns of the union of
    their ids, so the cost follows the number of distinct ids, not the vocabulary size.
    """
    union, inverse = torch.unique(torch.cat([query_ids.flatten(), doc_ids.flatten()]), return_inverse=True)
    split = query_ids.numel()
    q_cols, d_cols = inverse[:split].view_as(query_ids), inverse[split:].view_as(doc_ids)
    width = union.numel()
    q = query_weights.new_zeros((query_ids.shape[0], width)).scatter_add(1, q_cols, query_weights.float())
    d = doc_weights.new_zeros((doc_ids.shape[0], width)).scatter_add(1, d_cols, doc_weights.float())
    return q @ d.T


def pool_slots(ids: torch.Tensor, weights: torch.Tensor, slot_mask: torch.Tensor | None = None) -> list[dict[int, int]]:
    """Max-pool per-slot impacts into one ``{token_id: weight}`` dict per row (plain Python ints).

    ``slot_mask`` (``[B, K]`` bool) drops whole slots (stop-token truncation); zero weights are dropped.
    """
    weights = weights.to(torch.int64)
    if slot_mask is not None:
        weights = weights * slot_mask.unsqueeze(-1).to(weights.dtype)
    batch, k, t = ids.shape
    out: list[dict[int, int]] = []
    for row_ids, row_weights in zip(ids.reshape(batch, k * t).cpu(), weights.reshape(batch, k * t).cpu()):
        keep = row_weights > 0
        if not bool(keep.any()):
            out.append({})
            continue
        unique, inverse = torch.unique(row_ids[keep], return_inverse=True)
        pooled = torch.zeros(unique.shape[0], dtype=torch.int64).scatter_reduce(
            0, inverse, row_weights[keep], reduce="amax", include_self=False
        )
        out.append(dict(zip(unique.tolist(), pooled.tolist())))
    return out


def sparse_dot(query: dict, document: dict) -> int:
    """Impact score ``sum_t q[t] * d[t]`` (what Lucene's ImpactSimilarity computes)."""
    if len(query) > len(document):
        query, document = document, query
    return sum(weight * document.get(term, 0) for term, weight in query.items())

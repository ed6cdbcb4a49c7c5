"""Dense representations from the K slot hidden states (docs/method.md §4).

Every slot vector is L2-normalised (norm clamped at 1e-12, so zeroed slots stay zero). Then

* ``single``: the mean of the non-zero normalised vectors (count clamped >= 1), **not** re-normalised,
  exactly as the reference's evaluation (with K = 1 the dot product is the cosine);
* ``multi``: the normalised vectors themselves; slots zeroed by stop-token truncation are removed (score
  neutral: they contribute ``max(0, ·) = 0`` to MaxSim on either side), keeping at least one row (a zero
  row when nothing is left);
* :func:`maxsim_matrix`: the same MaxSim for batches of torch tensors, differentiable; the training loss
  calls it without the clamp (docs/method.md §8.1);
* :func:`maxsim` (defined in the leaf module :mod:`pyserini_diffretriever.maxsim`, re-exported here):
  ``sum_i max(0, max_j q_i · d_j)`` — ColBERT MaxSim with the reference's clamp at 0 of
  every per-query-vector maximum, summed (not averaged) over query vectors.
"""

from __future__ import annotations

import numpy as np
import torch

from ..maxsim import maxsim  # the one MaxSim (pure numpy, a leaf module); re-exported here

__all__ = ["NORM_EPS", "kept_slots", "l2_normalize", "maxsim", "maxsim_matrix", "multi_vectors", "single_vector"]

NORM_EPS = 1e-12


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation in fp32; all-zero rows stay zero."""
    vectors = vectors.float()
    return vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True).clamp_min(NORM_EPS)


def kept_slots(slots: torch.Tensor, slot_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, K]`` bool: slots that are allowed by ``slot_mask`` and not all-zero."""
    nonzero = slots.abs().amax(dim=-1) > 0
    return nonzero if slot_mask is None else nonzero & slot_mask.bool()


def single_vector(slots: torch.Tensor, slot_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, K, H]`` slot states -> ``[B, H]`` masked mean of the normalised non-zero slots (fp32)."""
    normalized = l2_normalize(slots)
    keep = kept_slots(slots, slot_mask).unsqueeze(-1).float()
    return (normalized * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1.0)


def multi_vectors(slots: torch.Tensor, slot_mask: torch.Tensor | None = None) -> list[np.ndarray]:
    """``[B, K, H]`` slot states -> per row a ``[K', H]`` float32 array of its normalised kept slots."""
    normalized = l2_normalize(slots)
    keep = kept_slots(slots, slot_mask)
    out = []
    for row, row_keep in zip(normalized, keep):
        vectors = row[row_keep]
        if vectors.shape[0] == 0:
            vectors = torch.zeros((1, row.shape[-1]), dtype=torch.float32)
        out.append(np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32))
    return out


def maxsim_matrix(queries: torch.Tensor, passages: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
    """``[Q, Kq, H]`` x ``[P, Kp, H]`` -> ``[Q, P]`` MaxSim ``sum_i max_j q_i . p_j`` (fp32, differentiable).

    ``clamp=True`` applies the evaluation's ``max(0, .)`` to every per-query-vector maximum (as :func:`maxsim`);
    the training loss uses ``clamp=False``. Vectors are used as given (normalise them first).
    """
    if queries.dim() != 3 or passages.dim() != 3 or queries.shape[-1] != passages.shape[-1]:
        raise ValueError(
            f"maxsim_matrix needs [Q, Kq, H] and [P, Kp, H] tensors, got {tuple(queries.shape)} and "
            f"{tuple(passages.shape)}"
        )
    sims = torch.einsum("qih,pjh->qpij", queries.float(), passages.float())
    best = sims.amax(dim=-1)
    return (best.clamp_min(0) if clamp else best).sum(dim=-1)

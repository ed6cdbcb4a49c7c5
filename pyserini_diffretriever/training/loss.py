"""The paper's contrastive loss over dense MaxSim and sparse dot products (docs/method.md §8.1).

With queries ``q`` and passages ``p`` of the global batch (every query's group: its positive first, then its
negatives, so query ``i``'s positive is passage ``i * group_size``):

* dense: ``L_d = CE(MaxSim(q, p) / K_q / tau, labels)`` with MaxSim = ``sum_i max_j q_i . p_j`` on L2-normalised
  slot vectors, **unclamped** (:func:`~pyserini_diffretriever.representation.dense.maxsim_matrix`);
* sparse: ``L_s = CE(s_q . s_p, labels)`` with ``s = ContentFilter(log(1 + relu(max_k logits)))`` over the full
  vocabulary, unquantised, no temperature
  (:func:`~pyserini_diffretriever.representation.sparse.sparse_score_matrix`);
* total = ``dense_weight * L_d + sparse_weight * L_s``.

Every passage of the global batch is a negative for every other query. Across processes the representations are
gathered with the local shard keeping its gradient (:func:`gather_with_grad`), and the caller multiplies the loss
by the world size so that DDP's gradient averaging yields the gradient of the global loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..representation.dense import maxsim_matrix
from ..representation.sparse import sparse_score_matrix
from ..representation.trainable import TrainableRepresentations

DEFAULT_TEMPERATURE = 0.01
DEFAULT_SPARSE_WEIGHT = 1.0


@dataclass(frozen=True)
class LossConfig:
    """Temperature of the dense scores and weights of the two terms."""

    temperature: float = DEFAULT_TEMPERATURE
    sparse_weight: float = DEFAULT_SPARSE_WEIGHT
    dense_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature!r}: expected > 0")
        if self.sparse_weight < 0 or self.dense_weight < 0 or self.sparse_weight + self.dense_weight == 0:
            raise ValueError("loss weights must be >= 0 and not both 0")


@dataclass
class LossParts:
    """The total loss and its two terms (scalars; ``total`` carries the gradient)."""

    total: torch.Tensor
    dense: torch.Tensor
    sparse: torch.Tensor


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0; only the local shard keeps its gradient.

    Without an initialised process group (one process) the tensor is returned unchanged. Shards may differ in
    their first dimension; the other dimensions must agree.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    world, rank = dist.get_world_size(), dist.get_rank()
    sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=tensor.device))
    longest = int(max(size.item() for size in sizes))
    padded = tensor.detach().new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor.detach()
    shards = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(shards, padded.contiguous())
    pieces = [shard[: int(size.item())] for shard, size in zip(shards, sizes)]
    pieces[rank] = tensor
    return torch.cat(pieces)


def gather_representations(reps: TrainableRepresentations) -> TrainableRepresentations:
    """:func:`gather_with_grad` of all three tensors (sparse rows padded to the widest process first)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return reps
    width = torch.tensor([reps.sparse_ids.shape[1]], device=reps.sparse_ids.device)
    dist.all_reduce(width, op=dist.ReduceOp.MAX)
    extra = int(width.item()) - reps.sparse_ids.shape[1]
    ids, weights = F.pad(reps.sparse_ids, (0, extra)), F.pad(reps.sparse_weights, (0, extra))
    return TrainableRepresentations(gather_with_grad(reps.dense), gather_with_grad(ids), gather_with_grad(weights))


def contrastive_loss(
    queries: TrainableRepresentations,
    passages: TrainableRepresentations,
    group_size: int,
    config: LossConfig = LossConfig(),
) -> LossParts:
    """The loss of one (already gathered) batch: ``passages`` holds ``group_size`` rows per query, positive first."""
    n_queries = queries.dense.shape[0]
    if passages.dense.shape[0] != n_queries * group_size:
        raise ValueError(f"{passages.dense.shape[0]} passages for {n_queries} queries; expected {group_size} per query")
    labels = torch.arange(n_queries, device=queries.dense.device) * group_size
    k_query = queries.dense.shape[1]
    dense_scores = maxsim_matrix(queries.dense, passages.dense, clamp=False) / k_query / config.temperature
    dense = F.cross_entropy(dense_scores, labels)
    sparse_scores = sparse_score_matrix(
        queries.sparse_ids, queries.sparse_weights, passages.sparse_ids, passages.sparse_weights
    )
    sparse = F.cross_entropy(sparse_scores, labels)
    total = config.dense_weight * dense + config.sparse_weight * sparse
    return LossParts(total=total, dense=dense.detach(), sparse=sparse.detach())

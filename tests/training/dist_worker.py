"""Worker of the cross-process loss test (imported by spawned processes: keep its imports light)."""

from __future__ import annotations

import torch

from pyserini_diffretriever.representation.trainable import TrainableRepresentations
from pyserini_diffretriever.training.loss import contrastive_loss, gather_representations


def random_representations(seed: int, rows: int, k: int, width: int) -> TrainableRepresentations:
    gen = torch.Generator().manual_seed(seed)
    dense = torch.nn.functional.normalize(torch.randn(rows, k, 8, generator=gen), dim=-1)
    ids = torch.stack([torch.randperm(30, generator=gen)[:width] for _ in range(rows)])
    return TrainableRepresentations(dense, ids, torch.rand(rows, width, generator=gen))


def full_batch(group: int = 3):
    queries = random_representations(0, 4, 2, 5)
    passages = random_representations(1, 4 * group, 3, 6)
    return queries, passages, group


def rank_gradients(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One process of the gather test: its shard of the batch, the gathered loss x world size, its gradients."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    queries, passages, group = full_batch()
    q_rows = slice(rank * 2, rank * 2 + 2)
    p_rows = slice(rank * 2 * group, (rank * 2 + 2) * group)
    width = 4 + rank  # shards of different sparse widths are padded before gathering
    local = [
        TrainableRepresentations(
            reps.dense[rows].clone().requires_grad_(),
            reps.sparse_ids[rows, :width],
            reps.sparse_weights[rows, :width].clone().requires_grad_(),
        )
        for reps, rows in ((queries, q_rows), (passages, p_rows))
    ]
    loss = contrastive_loss(gather_representations(local[0]), gather_representations(local[1]), group).total
    (loss * world).backward()
    torch.save([(r.dense.grad, r.sparse_weights.grad) for r in local], f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()

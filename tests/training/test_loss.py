"""The training loss (docs/method.md §8.1) on a fixed tiny batch (Dream and LLaDA fixtures), and across processes.

The reference value is computed independently from the encoders' own read-out (``read_out`` with the slot
logits kept, no stop truncation) with the formulas written out here: explicit normalisation, MaxSim as a loop,
a full-vocabulary sparse vector per text, and cross-entropy as ``logsumexp - score``.
"""

from __future__ import annotations

import math

import pytest
import torch

from pyserini_diffretriever.backbones import load_backbone
from pyserini_diffretriever.encoders.model import DiffRetrieverModel
from pyserini_diffretriever.representation.content_words import content_token_ids
from pyserini_diffretriever.representation.readout import read_out
from pyserini_diffretriever.training import DiffRetrieverForTraining, TevatronGroups, contrastive_loss
from pyserini_diffretriever.training.collator import SIDE_KEYS

from . import dist_worker
from .conftest import tiny_settings

FAMILIES = ("tiny_dream_dir", "tiny_llada_dir")
LONG_PARTNER = " ".join(["aerodynamic heating of a slender cone at hypersonic speed"] * 4)


def _model(request, family: str, groups_file, tmp_path) -> tuple[DiffRetrieverForTraining, dict, list]:
    model_dir = request.getfixturevalue(family)
    settings = tiny_settings(model_dir, groups_file, tmp_path / "out", temperature=0.05)
    torch.manual_seed(0)
    model = DiffRetrieverForTraining(load_backbone(model_dir), settings)
    with torch.no_grad():  # a non-trivial adapter: B is zero at initialisation
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    model.eval()
    dataset = TevatronGroups(groups_file, n_negatives=2, seed=1)
    groups = [dataset[i] for i in range(3)]
    return model, model.collator()(groups), groups


def _reference_representations(model: DiffRetrieverForTraining, texts: list[str], side: str):
    """Normalised slot vectors and full-vocabulary sparse vectors from the encoders' read-out."""
    builder = model.builders[side]
    encoder_model = DiffRetrieverModel(model.loaded_backbone())
    built = encoder_model.input_builder(side, builder.k, model.settings.prompt, builder.max_length).build(texts)
    out = read_out(model.backbone, built, keep_logits=True)  # no stop ids: training does not truncate
    dense = out.dense / out.dense.norm(dim=-1, keepdim=True)
    vocab = out.logits.shape[-1]
    sparse = torch.zeros((len(texts), vocab))
    for row, ids in enumerate(content_token_ids(texts, model.tokenizer)):
        ids = [i for i in ids if i != model.spec.mask_token_id]
        best = out.logits[row][:, ids].max(dim=0).values
        sparse[row, ids] = torch.log1p(torch.relu(best))
    return dense, sparse


def _reference_loss(model, groups, temperature: float) -> float:
    queries = [g.query for g in groups]
    passages = [p for g in groups for p in g.passages]
    q_dense, q_sparse = _reference_representations(model, queries, "query")
    p_dense, p_sparse = _reference_representations(model, passages, "passage")
    group = len(groups[0].passages)
    dense_terms, sparse_terms = [], []
    for i in range(len(queries)):
        dense_scores = [
            sum(max(float(q @ p) for p in p_dense[j]) for q in q_dense[i]) / q_dense.shape[1] / temperature
            for j in range(len(passages))
        ]
        sparse_scores = [float(q_sparse[i] @ p_sparse[j]) for j in range(len(passages))]
        for scores, terms in ((dense_scores, dense_terms), (sparse_scores, sparse_terms)):
            top = max(scores)
            terms.append(top + math.log(sum(math.exp(s - top) for s in scores)) - scores[i * group])
    return sum(dense_terms) / len(queries) + sum(sparse_terms) / len(queries)


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_equals_an_independent_computation_from_the_encoders_representations(
    request, family, groups_file, tmp_path
):
    model, batch, groups = _model(request, family, groups_file, tmp_path)
    with torch.no_grad():
        out = model(**batch)
    expected = _reference_loss(model, groups, temperature=0.05)
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-4)
    assert float(out["dense_loss"]) > 0 and float(out["sparse_loss"]) > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_only_lora_parameters(request, family, groups_file, tmp_path):
    model, batch, _ = _model(request, family, groups_file, tmp_path)
    model.train()
    model(**batch)["loss"].backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all(".lora_A." in name or ".lora_B." in name for name in with_grad)
    assert all(p.requires_grad == ("lora_" in name) for name, p in model.named_parameters())
    assert any(float(p.grad.abs().sum()) > 0 for name, p in model.named_parameters() if "lora_A" in name)
    assert any(float(p.grad.abs().sum()) > 0 for name, p in model.named_parameters() if "lora_B" in name)


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_is_invariant_to_left_padding_from_other_batch_partners(request, family, groups_file, tmp_path):
    model, batch, groups = _model(request, family, groups_file, tmp_path)
    collator = model.collator()
    queries = [g.query for g in groups]
    passages = [p for g in groups for p in g.passages]

    def represent(side, texts, partner: bool):
        builder = collator.query_builder if side == "query" else collator.passage_builder
        tensors = collator.side(builder, texts + [LONG_PARTNER] if partner else texts, side)
        reps = model.represent(side, *(tensors[f"{side}_{key}"] for key in SIDE_KEYS))
        return reps.select(slice(0, len(texts)))

    with torch.no_grad():
        alone = [represent("query", queries, False), represent("passage", passages, False)]
        padded = [represent("query", queries, True), represent("passage", passages, True)]
        assert torch.allclose(alone[1].dense, padded[1].dense, atol=1e-5)
        assert float(model.loss(*alone).total) == pytest.approx(float(model.loss(*padded).total), rel=1e-5)
        assert float(model(**batch)["loss"]) == pytest.approx(float(model.loss(*alone).total), rel=1e-5)


# The forked workers run torch on one thread and gloo only (no OpenMP pool, no JVM), so fork is safe here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_gathered_loss_gives_each_process_the_global_gradient_of_its_shard(tmp_path):
    import torch.multiprocessing as mp

    world = 2
    # fork: the workers inherit the imported package instead of importing it again (seconds each)
    mp.start_processes(
        dist_worker.rank_gradients,
        args=(world, str(tmp_path / "init"), str(tmp_path)),
        nprocs=world,
        join=True,
        start_method="fork",
    )
    queries, passages, group = dist_worker.full_batch()
    for reps in (queries, passages):
        reps.dense.requires_grad_()
    queries.sparse_weights = queries.sparse_weights.clone()
    queries.sparse_weights[0, 4:] = 0  # rank 0's shard keeps 4 sparse columns, rank 1's 5
    queries.sparse_weights[1, 4:] = 0
    queries.sparse_weights[2:, 5:] = 0
    passages.sparse_weights = passages.sparse_weights.clone()
    passages.sparse_weights[: 2 * group, 4:] = 0
    passages.sparse_weights[2 * group :, 5:] = 0
    for reps in (queries, passages):
        reps.sparse_weights.requires_grad_()
    contrastive_loss(queries, passages, group).total.backward()  # one process, the whole batch
    for rank in range(world):
        (q_dense, q_sparse), (p_dense, p_sparse) = torch.load(tmp_path / f"rank{rank}.pt")
        width = 4 + rank
        q_rows, p_rows = slice(rank * 2, rank * 2 + 2), slice(rank * 2 * group, (rank * 2 + 2) * group)
        assert torch.allclose(q_dense / world, queries.dense.grad[q_rows], atol=1e-6)
        assert torch.allclose(p_dense / world, passages.dense.grad[p_rows], atol=1e-6)
        assert torch.allclose(q_sparse / world, queries.sparse_weights.grad[q_rows, :width], atol=1e-6)
        assert torch.allclose(p_sparse / world, passages.sparse_weights.grad[p_rows, :width], atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(request, family, groups_file, tmp_path):
    results = []
    for checkpointing in (False, True):
        model_dir = request.getfixturevalue(family)
        settings = tiny_settings(model_dir, groups_file, tmp_path / "out", gradient_checkpointing=checkpointing)
        torch.manual_seed(0)
        model = DiffRetrieverForTraining(load_backbone(model_dir), settings).train()
        batch = model.collator()([TevatronGroups(groups_file, n_negatives=2)[i] for i in range(2)])
        torch.manual_seed(1)  # the same LoRA dropout masks
        loss = model(**batch)["loss"]
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((float(loss.detach()), grads))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-6) and grads_a.keys() == grads_b.keys()
    assert all(torch.allclose(grads_a[n], grads_b[n], atol=1e-6, rtol=1e-4) for n in grads_a)

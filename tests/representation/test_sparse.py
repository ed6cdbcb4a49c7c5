"""Sparse impacts (docs/method.md §5): hand-computed weights, filtering, top-k, pooling; end to end on tiny Dream."""

from __future__ import annotations

import math

import pytest
import torch

from pyserini_diffretriever.representation.content_words import content_token_ids
from pyserini_diffretriever.representation.inputs import InputBuilder
from pyserini_diffretriever.representation.readout import read_out, stop_token_ids
from pyserini_diffretriever.representation.sparse import (
    pad_content_ids,
    pool_slots,
    pooled_content_weights,
    quantize,
    slot_impacts,
    sparse_dot,
    sparse_score_matrix,
)

MASK = 9


def impact(logit: float, scale: float = 100.0) -> int:
    return int(scale * math.log(1 + max(logit, 0.0)))


def test_slot_impacts_hand_example():
    logits = torch.tensor(
        [[[0.0, 0.0, 2.0, 0.0, 0.0, 0.5, 0.0, -1.0, 0.0, 50.0], [0.0, 0.0, 0.1, 0.0, 0.0, 3.0, 0.0, 0.004, 0.0, 50.0]]]
    )
    ids, valid = pad_content_ids([[2, 5, 7, MASK]])
    got_ids, got_w = slot_impacts(logits, ids, valid, mask_token_id=MASK, top_k=128)
    assert got_ids.shape == (1, 2, 4) and got_w.dtype == torch.int32
    slot0 = {i: w for i, w in zip(got_ids[0, 0].tolist(), got_w[0, 0].tolist()) if w}
    slot1 = {i: w for i, w in zip(got_ids[0, 1].tolist(), got_w[0, 1].tolist()) if w}
    assert slot0 == {2: impact(2.0), 5: impact(0.5)}  # negative logit and the mask id give nothing
    assert slot1 == {2: impact(0.1), 5: impact(3.0)}  # 0.004 -> int(0.399) = 0 is dropped
    assert pool_slots(got_ids, got_w) == [{2: impact(2.0), 5: impact(3.0)}]  # max over slots


def test_top_k_per_slot_keeps_the_largest():
    logits = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 4.0]]])
    ids, valid = pad_content_ids([[1, 2, 3, 4]])
    got_ids, got_w = slot_impacts(logits, ids, valid, mask_token_id=None, top_k=2)
    assert pool_slots(got_ids, got_w) == [{4: impact(4.0), 3: impact(3.0)}]


def test_rows_only_see_their_own_content_ids():
    logits = torch.full((2, 1, 6), 5.0)
    ids, valid = pad_content_ids([[1], [2, 3, 4]])
    got_ids, got_w = slot_impacts(logits, ids, valid, mask_token_id=None)
    assert pool_slots(got_ids, got_w) == [{1: impact(5.0)}, {2: impact(5.0), 3: impact(5.0), 4: impact(5.0)}]


def test_no_content_ids():
    ids, valid = pad_content_ids([[], []])
    got_ids, got_w = slot_impacts(torch.ones(2, 3, 5), ids, valid, mask_token_id=None)
    assert got_ids.shape == (2, 3, 0)
    assert pool_slots(got_ids, got_w) == [{}, {}]


def test_pool_slots_respects_the_slot_mask():
    ids = torch.tensor([[[1, 2], [1, 3]]])
    weights = torch.tensor([[[5, 6], [9, 7]]], dtype=torch.int32)
    assert pool_slots(ids, weights) == [{1: 9, 2: 6, 3: 7}]
    assert pool_slots(ids, weights, torch.tensor([[True, False]])) == [{1: 5, 2: 6}]


def test_quantize_truncates_or_rounds():
    w = torch.tensor([0.127, 0.999, 0.004])
    assert quantize(w).tolist() == [12, 99, 0]
    assert quantize(w, rounding="round").tolist() == [13, 100, 0]
    assert quantize(w, quantization=10).tolist() == [1, 9, 0]
    with pytest.raises(ValueError, match="rounding='floor'"):
        quantize(w, rounding="floor")


def test_sparse_dot():
    assert sparse_dot({"a": 2, "b": 3}, {"b": 5, "c": 7}) == 15
    assert sparse_dot({}, {"b": 5}) == 0


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_sparse_vectors_hold_only_own_content_ids(tiny_backbones, family):
    loaded = tiny_backbones(family)
    tok, spec = loaded.tokenizer, loaded.spec
    texts = ["Quantum entanglement of photons", "Volcanic eruptions and the climate", "the of and"]
    words = [["quantum", "entanglement", "photons"], ["volcanic", "eruptions", "climate"], []]
    allowed = [{i for w in ws for i in tok.encode(w, add_special_tokens=False)} for ws in words]
    builder = InputBuilder(tok, spec, "few", 4, 128, "passage")
    out = read_out(
        loaded.model,
        builder.build(texts),
        stop_ids=stop_token_ids(tok, spec.mask_token_id),
        content_ids=content_token_ids(texts, tok),
    )
    vectors = out.sparse()
    assert vectors[2] == {}
    assert any(vectors[:2])  # the random tiny model still activates something
    for vector, ok in zip(vectors, allowed):
        assert set(vector) <= ok
        assert spec.mask_token_id not in vector
        assert all(type(i) is int and type(w) is int and w >= 1 for i, w in vector.items())


def test_pooled_content_weights_are_the_unquantised_max_over_slots_of_the_content_ids():
    logits = torch.tensor([[[1.0, -2.0, 3.0, 0.5], [2.0, 0.5, -1.0, 9.0]]])  # [1, K=2, V=4]
    ids, valid = pad_content_ids([[0, 1, 2, 3]])
    weights = pooled_content_weights(logits, ids, valid, mask_token_id=3)
    assert torch.allclose(weights, torch.log1p(torch.tensor([[2.0, 0.5, 3.0, 0.0]])))  # id 3 = mask -> 0
    ids, valid = pad_content_ids([[2], [0, 1]])
    weights = pooled_content_weights(logits.expand(2, 2, 4), ids, valid, mask_token_id=None)
    assert float(weights[0, 1]) == 0.0  # padding


def test_sparse_score_matrix_equals_the_dot_products_of_the_sparse_vectors():
    ids_q, valid_q = pad_content_ids([[5, 9], [0]])
    weights_q = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    ids_d, valid_d = pad_content_ids([[9, 0, 4], [5]])
    weights_d = torch.tensor([[0.5, 4.0, 1.0], [2.0, 0.0, 0.0]])
    scores = sparse_score_matrix(ids_q, weights_q * valid_q, ids_d, weights_d * valid_d)
    docs = [{9: 0.5, 0: 4.0, 4: 1.0}, {5: 2.0}]
    queries = [{5: 1.0, 9: 2.0}, {0: 3.0}]
    assert scores.tolist() == [[sparse_dot(q, d) for d in docs] for q in queries]

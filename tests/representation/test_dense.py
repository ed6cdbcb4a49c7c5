"""Dense representations (docs/method.md §4) on hand examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyserini_diffretriever.representation.dense import (
    l2_normalize,
    maxsim,
    maxsim_matrix,
    multi_vectors,
    single_vector,
)


def test_l2_normalize_keeps_zero_rows_zero():
    out = l2_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_single_vector_is_the_masked_mean_without_renormalisation():
    slots = torch.tensor([[[3.0, 4.0], [0.0, 0.0], [2.0, 0.0]]])
    assert torch.allclose(single_vector(slots), torch.tensor([[0.8, 0.4]]))  # mean of (.6,.8) and (1,0)
    assert torch.allclose(single_vector(slots, torch.tensor([[True, True, False]])), torch.tensor([[0.6, 0.8]]))
    # every slot removed: count clamps at 1, the vector is zero
    assert torch.equal(single_vector(torch.zeros(1, 2, 2)), torch.zeros(1, 2))
    assert single_vector(slots).dtype == torch.float32


def test_single_vector_with_k1_is_the_unit_vector():
    assert torch.allclose(single_vector(torch.tensor([[[0.0, -5.0]]])), torch.tensor([[0.0, -1.0]]))


def test_multi_vectors_drop_zeroed_slots_but_keep_one_row():
    slots = torch.tensor([[[3.0, 4.0], [0.0, 0.0], [0.0, 2.0]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    first, second = multi_vectors(slots)
    assert first.dtype == np.float32 and first.shape == (2, 2)
    np.testing.assert_allclose(first, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(second, np.zeros((1, 2), dtype=np.float32))
    (masked,) = multi_vectors(slots[:1], torch.tensor([[True, True, False]]))
    np.testing.assert_allclose(masked, [[0.6, 0.8]], rtol=1e-6)


def test_maxsim_hand_examples():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[0.5, 0.5], [-1.0, 0.0]])
    assert maxsim(q, d) == pytest.approx(1.0)  # 0.5 + 0.5, summed not averaged
    assert maxsim(np.array([[-1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])) == 0.0  # clamp at 0
    assert maxsim(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 0.0]])) == pytest.approx(1.0)  # zero q row
    assert maxsim(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0], [0.3, 0.0]])) == pytest.approx(0.3)  # zero d row
    assert maxsim(np.zeros((0, 2)), d) == 0.0
    assert maxsim(q, np.zeros((0, 2))) == 0.0


def test_maxsim_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="maxsim needs"):
        maxsim(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="maxsim needs"):
        maxsim(np.zeros(3), np.zeros((2, 3)))


def test_maxsim_matrix_matches_maxsim_when_clamped_and_keeps_negatives_unclamped():
    gen = torch.Generator().manual_seed(0)
    queries, passages = torch.randn(3, 2, 5, generator=gen), torch.randn(4, 3, 5, generator=gen)
    clamped = maxsim_matrix(queries, passages)
    for i in range(3):
        for j in range(4):
            assert float(clamped[i, j]) == pytest.approx(maxsim(queries[i].numpy(), passages[j].numpy()), abs=1e-5)
    q, p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), torch.tensor([[[-1.0, 0.0]]])
    assert float(maxsim_matrix(q, p)) == 0.0 and float(maxsim_matrix(q, p, clamp=False)) == -1.0
    with pytest.raises(ValueError, match="maxsim_matrix needs"):
        maxsim_matrix(q[0], p)

"""The WARP_SELECT kernels: the numba and numpy versions agree; max per document, imputation, clamping."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.indexing import warp_kernel
from pyserini_diffretriever.indexing.warp_codec import pack_codes

NEEDS_NUMBA = pytest.mark.skipif(not warp_kernel.HAVE_NUMBA, reason="numba not installed")


def test_reduction_takes_the_best_per_query_vector_and_imputes_the_rest():
    docs = np.array([0, 0, 1, 0], dtype=np.int32)
    query_vector = np.array([0, 0, 1, 0], dtype=np.int32)
    scores = np.array([0.2, 0.5, -1.0, 0.1], dtype=np.float32)
    impute = np.array([0.1, 0.3], dtype=np.float32)
    for use_numba in (False, True):
        unique, totals = warp_kernel.reduce_documents(docs, query_vector, scores, impute, use_numba)
        assert unique.tolist() == [0, 1]
        np.testing.assert_allclose(totals, [0.5 + 0.3, 0.1 + 0.0])  # negative best clamped to 0


@pytest.mark.skipif(not warp_kernel.HAVE_NUMBA, reason="numba not installed")
def test_numba_and_numpy_kernels_agree():
    rng = np.random.default_rng(0)
    nlist, rows, width, k = 10, 400, 6, 3
    cells_of_rows = np.sort(rng.integers(0, nlist, rows))
    cell_offsets = np.concatenate([[0], np.cumsum(np.bincount(cells_of_rows, minlength=nlist))]).astype(np.int64)
    codes = rng.integers(0, 256, (rows, width)).astype(np.uint8)
    doc_numbers = rng.integers(0, 50, rows).astype(np.int32)
    cells = np.stack([rng.choice(nlist, 4, replace=False) for _ in range(k)]).astype(np.int64)
    cell_scores = rng.standard_normal(cells.shape).astype(np.float32)
    tables = rng.standard_normal((k, width, 256)).astype(np.float32)
    impute = rng.standard_normal(k).astype(np.float32)
    fast = warp_kernel.score_probed(codes, doc_numbers, cell_offsets, cells, cell_scores, tables, True)
    slow = warp_kernel.score_probed(codes, doc_numbers, cell_offsets, cells, cell_scores, tables, False)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert len(fast[0]) == int((cell_offsets[cells + 1] - cell_offsets[cells]).sum())
    docs_fast, totals_fast = warp_kernel.reduce_documents(*fast, impute, True)
    docs_slow, totals_slow = warp_kernel.reduce_documents(*slow, impute, False)
    np.testing.assert_array_equal(docs_fast, docs_slow)
    np.testing.assert_allclose(totals_fast, totals_slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_numba", [False, pytest.param(True, marks=NEEDS_NUMBA)])
def test_chosen_rows_score_as_their_centroid_plus_table_lookups(use_numba):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (30, 5)).astype(np.uint8)
    rows = np.array([7, 2, 29, 2])  # any order, repeats allowed
    row_base = rng.standard_normal((3, len(rows))).astype(np.float32)
    tables = rng.standard_normal((3, 5, 256)).astype(np.float32)
    got = warp_kernel.score_rows(codes, rows, row_base, tables, use_numba)
    expected = [
        [row_base[k, r] + sum(tables[k, j, codes[row, j]] for j in range(5)) for r, row in enumerate(rows)]
        for k in range(3)
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _probed_cells(seed: int = 0, nlist: int = 10, rows: int = 400, width: int = 6, k: int = 3, docs: int = 50):
    rng = np.random.default_rng(seed)
    cells_of_rows = np.sort(rng.integers(0, nlist, rows))
    cell_offsets = np.concatenate([[0], np.cumsum(np.bincount(cells_of_rows, minlength=nlist))]).astype(np.int64)
    codes = rng.integers(0, 256, (rows, width)).astype(np.uint8)
    doc_numbers = rng.integers(0, docs, rows).astype(np.int32)
    cells = np.stack([rng.choice(nlist, 4, replace=False) for _ in range(k)]).astype(np.int64)
    cell_scores = rng.standard_normal(cells.shape).astype(np.float32)
    tables = rng.standard_normal((k, width, 256)).astype(np.float32)
    impute = rng.standard_normal(k).astype(np.float32)
    return codes, doc_numbers, cell_offsets, cells, cell_scores, tables, impute


@pytest.mark.parametrize("use_numba", [False, pytest.param(True, marks=NEEDS_NUMBA)])
def test_fused_probe_equals_score_then_reduce_and_restores_its_scratch(use_numba):
    arrays = _probed_cells()
    codes, doc_numbers, cell_offsets, cells, cell_scores, tables, impute = arrays
    expected_docs, expected = warp_kernel.reduce_documents(
        *warp_kernel.score_probed(*arrays[:-1], use_numba=False), impute, use_numba=False
    )
    scratch = warp_kernel.new_scratch(50)
    for _ in range(2):  # the second query sees the scratch array the first one left
        docs, totals = warp_kernel.probe_maxsim(*arrays, scratch, use_numba=use_numba)
        order = np.argsort(docs)
        np.testing.assert_array_equal(docs[order], expected_docs)
        np.testing.assert_allclose(totals[order], expected, rtol=1e-5, atol=1e-5)
        assert (scratch == -1).all()


@pytest.mark.parametrize("use_numba", [False, pytest.param(True, marks=NEEDS_NUMBA)])
def test_affine_byte_maxsim_reads_each_documents_rows(use_numba):
    rng = np.random.default_rng(1)
    offsets = np.array([0, 3, 3, 7, 12], dtype=np.int64)  # document 1 has no rows
    codes = rng.integers(0, 256, (12, 20)).astype(np.uint8)
    weights = rng.standard_normal((2, 20)).astype(np.float32) / 100
    bias = np.array([0.5, -3.0], dtype=np.float32)
    docs = np.array([3, 0, 1, 2], dtype=np.int64)
    got = warp_kernel.affine_uint8_maxsim(codes, offsets, docs, weights, bias, use_numba)
    for position, doc in enumerate(docs):
        rows = codes[offsets[doc] : offsets[doc + 1]].astype(np.float64)
        want = np.maximum((rows @ weights.T + bias).max(axis=0), 0).sum() if len(rows) else 0.0
        assert got[position] == pytest.approx(want, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("use_numba", [False, pytest.param(True, marks=NEEDS_NUMBA)])
@pytest.mark.parametrize("bits", [2, 4])
def test_affine_maxsim_scores_packed_values_from_their_bytes(use_numba, bits):
    rng = np.random.default_rng(2)
    offsets = np.array([0, 4, 9], dtype=np.int64)
    values = np.concatenate([rng.integers(0, 256, (9, 6)), rng.integers(0, 1 << bits, (9, 16))], axis=1).astype(
        np.uint8
    )
    rows = np.concatenate([values[:, :6], pack_codes(values[:, 6:], bits)], axis=1)  # 6 whole bytes, then packed
    np.testing.assert_array_equal(warp_kernel.unpack_row_values(rows, 6, bits), values)
    weights = rng.standard_normal((3, 22)).astype(np.float32) / 50
    bias = np.array([0.5, 0.1, -0.2], dtype=np.float32)
    got = warp_kernel.affine_uint8_maxsim(rows, offsets, np.array([1, 0]), weights, bias, use_numba, 6, bits)
    for position, doc in enumerate([1, 0]):
        sims = values[offsets[doc] : offsets[doc + 1]].astype(np.float64) @ weights.T + bias
        assert got[position] == pytest.approx(np.maximum(sims.max(axis=0), 0).sum(), rel=1e-4, abs=1e-4)
    with pytest.raises(ValueError, match="do not match"):
        warp_kernel.affine_uint8_maxsim(rows, offsets, np.array([0]), weights[:, :20], bias, use_numba, 6, bits)


def test_sq8_codes_compiled_equal_numpy_and_clip_out_of_range_values():
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((300, 70)).astype(np.float32)
    low, high = np.quantile(vectors, 0.02, axis=0), np.quantile(vectors, 0.98, axis=0)  # some values fall outside
    step = ((high - low) / 256).astype(np.float32)
    expected = warp_kernel.sq8_codes_numpy(vectors, low, step)
    np.testing.assert_array_equal(warp_kernel.sq8_codes(vectors, low, step), expected)
    assert expected.min() == 0 and expected.max() == 255
    inside = (vectors > low + step) & (vectors < high - step)
    decoded = low + (expected + 0.5) * step
    assert np.abs(decoded - vectors)[inside].max() <= 0.5 * step.max() * 1.0001

"""The cell-major index's codec: packing, byte tables equal the decoded inner products (PQ and per-dimension
buckets), PQ beats buckets at the same bytes, persistence, the SQ8 tier."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.indexing.warp_codec import (
    WarpCodec,
    default_cells,
    pack_codes,
    train_warp_codec,
    unpack_codes,
)


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 32)).astype(np.float32) * np.linspace(2, 0.2, 32, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("bits", [2, 4])
def test_packing_round_trips(bits):
    buckets = np.random.default_rng(bits).integers(0, 2**bits, size=(7, 16)).astype(np.uint8)
    packed = pack_codes(buckets, bits)
    assert packed.shape == (7, 16 * bits // 8)
    np.testing.assert_array_equal(unpack_codes(packed, bits), buckets)


CODES = [("sq", 2), ("sq", 4), ("pq", 8)]


def _relative_error(codec, rows, cells, codes):
    residual = codec.project(rows) - codec.centroids[cells]
    decoded = codec.decode_residuals(codes)
    return float(np.linalg.norm(residual - decoded, axis=1).mean() / np.linalg.norm(residual, axis=1).mean())


@pytest.mark.parametrize(("residual", "bits"), CODES)
def test_byte_tables_score_the_decoded_residual(sample, residual, bits, tmp_path):
    codec, facts = train_warp_codec(sample, reduced_dimension=16, residual=residual, bits=bits, nlist=8, seed=1)
    assert codec.code_bytes == (16 // 4 if residual == "pq" else 16 * bits // 8) and 0 < facts["energy_kept"] <= 1
    cells, codes = codec.encode_small(sample[:50])
    queries = sample[100:103]
    projected = codec.project(queries)
    tables = codec.byte_tables(projected)
    assert tables.shape == (3, codec.code_bytes, 256)
    via_tables = tables[:, np.arange(codes.shape[1]), codes].sum(-1)  # [K, 50]
    np.testing.assert_allclose(via_tables, projected @ codec.decode_residuals(codes).T, rtol=1e-4, atol=1e-5)
    assert _relative_error(codec, sample[:50], cells, codes) < {2: 0.45, 4: 0.2, 8: 0.45}[bits]
    codec.save(tmp_path / "codec.npz")
    again = WarpCodec.load(tmp_path / "codec.npz")
    assert again.describe() == codec.describe()
    np.testing.assert_array_equal(again.encode_small(sample[:50])[1], codes)


def test_pq_keeps_more_of_the_residual_than_buckets_at_the_same_bytes(sample):
    """Why PQ is the default: 4 dimensions per byte quantised jointly beat 4 x 2-bit buckets (issue 17)."""
    errors = {}
    for residual, bits in (("sq", 2), ("pq", 8)):
        codec, _ = train_warp_codec(sample, reduced_dimension=16, residual=residual, bits=bits, nlist=8, seed=1)
        cells, codes = codec.encode_small(sample[1000:1500])  # not the training rows' own codes only
        errors[residual] = _relative_error(codec, sample[1000:1500], cells, codes)
    assert errors["pq"] < 0.9 * errors["sq"]


def test_sq8_tier_scores_close_to_exact(sample, tmp_path):
    codec, _ = train_warp_codec(sample, reduced_dimension=16, nlist=8)
    codes = codec.encode_rerank(sample[:200])
    assert codes.dtype == np.uint8 and codes.shape == (200, 32)
    query = sample[300:304]
    np.testing.assert_allclose(codec.rerank_scores(query, codes), sample[:200] @ query.T, atol=0.02)
    codec.save(tmp_path / "codec.npz")
    again = WarpCodec.load(tmp_path / "codec.npz")
    np.testing.assert_array_equal(again.rerank_scores(query, codes), codec.rerank_scores(query, codes))
    none, _ = train_warp_codec(sample, reduced_dimension=16, nlist=8, rerank_tier="none")
    none.save(tmp_path / "small.npz")
    assert not WarpCodec.load(tmp_path / "small.npz").has_rerank_tier


@pytest.mark.parametrize(("tier", "bits"), [("split4", 4), ("split2", 2)])
def test_split_tier_keeps_the_projection_finely_and_the_rest_coarsely(sample, tmp_path, tier, bits):
    codec, _ = train_warp_codec(sample, reduced_dimension=16, nlist=8, rerank_tier=tier)
    rows = codec.encode_rerank(sample[:200])
    assert codec.rerank_tier == tier and codec.rerank_whole_bytes == 16
    assert rows.dtype == np.uint8 and rows.shape == (200, 16 + 32 * bits // 8) == (200, codec.rerank_bytes)
    np.testing.assert_array_equal(rows, codec.encode_rerank(sample[:200], codec.project(sample[:200])))
    query = sample[300:304]
    exact = sample[:200] @ query.T
    split_error = np.abs(codec.rerank_scores(query, rows) - exact).mean()
    # the same bits on every dimension without the projection: the split's 8-bit projection must beat it
    low, step = codec.rerank_low, codec.rerank_step
    levels = 1 << bits
    plain = low + (np.clip(np.floor((sample[:200] - low) / step), 0, levels - 1) + 0.5) * step
    assert split_error < 0.5 * np.abs(plain @ query.T - exact).mean()
    assert split_error < (0.02 if bits == 4 else 0.05)
    codec.save(tmp_path / "codec.npz")
    again = WarpCodec.load(tmp_path / "codec.npz")
    assert again.describe()["rerank_tier"] == tier and again.describe()["rerank_bytes"] == rows.shape[1]
    np.testing.assert_array_equal(again.rerank_scores(query, rows), codec.rerank_scores(query, rows))


def test_bad_settings_are_refused(sample):
    with pytest.raises(ValueError, match="bits must be 2 or 4"):
        train_warp_codec(sample, residual="sq", bits=3, nlist=8)
    with pytest.raises(ValueError, match="whole bytes"):
        train_warp_codec(sample, reduced_dimension=15, residual="sq", bits=2, nlist=8)
    with pytest.raises(ValueError, match="4 dimensions per PQ byte"):
        train_warp_codec(sample, reduced_dimension=18, nlist=8)
    with pytest.raises(ValueError, match="residual code must be one of"):
        train_warp_codec(sample, residual="rq", nlist=8)
    with pytest.raises(ValueError, match="at least 256 training vectors"):
        train_warp_codec(sample[:200], reduced_dimension=16, nlist=2)
    with pytest.raises(ValueError, match="rerank tier"):
        train_warp_codec(sample, nlist=8, rerank_tier="fp16")


def test_cells_grow_like_the_square_root():
    assert default_cells(1_600_000) == 2048 and default_cells(16_000_000) == 8192
    assert default_cells(0) == 16


def test_extra_cell_vectors_lift_the_sample_cap_on_cells(sample):
    """A fixed codec sample caps the cells at sample / TRAIN_POINTS_PER_CELL (B9 1M: 3,276 instead of 8,192);
    projected extra blocks lift it without holding the floats (issue 17)."""
    small = sample[:400]  # 400 // 40 = 10 cells at most
    capped, facts = train_warp_codec(small, reduced_dimension=16, nlist=32, seed=1)
    assert capped.nlist == 10 and facts["cell_train_vectors"] == 400
    blocks = (block for block in (sample[400:1400], sample[1400:2000]))  # a generator: read once
    codec, facts = train_warp_codec(small, reduced_dimension=16, nlist=32, seed=1, cell_vectors=blocks)
    assert codec.nlist == 32 and facts["cell_train_vectors"] == 2000 and facts["train_vectors"] == 400
    np.testing.assert_array_equal(codec.projection, capped.projection)  # the projection still comes from the sample
    with pytest.raises(ValueError, match=r"cell training vectors must be \[m, 32\]"):
        train_warp_codec(small, reduced_dimension=16, nlist=32, cell_vectors=[sample[:10, :16]])

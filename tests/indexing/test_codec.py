"""The multi-vector codec: uncentred projection, IVF residual codes, save/load, and refused settings."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.indexing.codec import (
    MultiVectorCodec,
    check_residual_code,
    default_nlist,
    train_codec,
    uncentred_projection,
)


def anisotropic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Normalised vectors with a strong common mean and a fast-decaying spectrum."""
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(dim)
    mean *= 2.0 / np.linalg.norm(mean)
    scales = np.arange(1, dim + 1) ** -1.0
    x = mean + rng.standard_normal((n, dim)) * scales
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def projector(rows: np.ndarray) -> np.ndarray:
    return rows.T.astype(np.float64) @ rows.astype(np.float64)


def test_projection_spans_the_top_eigenvectors_of_the_uncentred_moment():
    data = anisotropic(3000, 96)
    rows, kept = uncentred_projection(data, 16)
    moment = data.T.astype(np.float64) @ data / len(data)
    values, vectors = np.linalg.eigh(moment)
    top = vectors[:, np.argsort(values)[::-1][:16]].T
    assert rows.shape == (16, 96)
    np.testing.assert_allclose(rows @ rows.T, np.eye(16), atol=1e-4)
    assert np.abs(projector(rows) - projector(top)).max() < 1e-3
    assert kept == pytest.approx(np.sort(values)[::-1][:16].sum() / values.sum(), rel=1e-4)


def test_projection_keeps_the_common_mean_direction_that_centring_would_drop():
    data = anisotropic(2000, 64, seed=1)
    rows, _ = uncentred_projection(data, 4)
    mean = data.mean(axis=0)
    kept = np.linalg.norm(rows @ mean) / np.linalg.norm(mean)
    assert kept > 0.99
    centred = data - mean
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    assert np.linalg.norm(vt[:4] @ mean) / np.linalg.norm(mean) < 0.9  # what a centred PCA would keep


@pytest.fixture(scope="module")
def trained():
    data = anisotropic(4000, 64, seed=2)
    codec, facts = train_codec(data, reduced_dimension=32, residual_code="SQ8", nlist=16)
    return data, codec, facts


def test_codes_decode_close_to_the_projection(trained):
    data, codec, facts = trained
    codes = codec.encode(data[:500])
    assert codes.dtype == np.uint8 and codes.shape == (500, codec.code_size)
    assert codec.code_size == 32 + 1  # SQ8 per projected dimension + one byte of list number
    projected = codec.project(data[:500])
    decoded = codec.decode(codes)
    error = np.linalg.norm(decoded - projected, axis=1) / np.linalg.norm(projected, axis=1)
    assert error.max() < 0.02
    assert facts["train_vectors"] == 4000 and 0.5 < facts["energy_kept"] <= 1.0
    assert codec.describe()["reduced_dimension"] == 32 and codec.nlist == 16


def test_inner_products_survive_compression(trained):
    data, codec, _ = trained
    exact = data[:50] @ data[50:550].T
    approx = codec.project(data[:50]) @ codec.decode(codec.encode(data[50:550])).T
    assert np.abs(exact - approx).max() < 0.05


def test_save_and_load_give_the_same_codes(trained, tmp_path):
    data, codec, _ = trained
    codec.save(tmp_path / "codec.faiss")
    loaded = MultiVectorCodec.load(tmp_path / "codec.faiss")
    np.testing.assert_array_equal(loaded.encode(data[:100]), codec.encode(data[:100]))
    assert loaded.reduced_dimension == 32


def test_training_is_deterministic():
    data = anisotropic(2000, 48, seed=3)
    first, _ = train_codec(data, reduced_dimension=16, nlist=8)
    second, _ = train_codec(data, reduced_dimension=16, nlist=8)
    np.testing.assert_array_equal(first.encode(data), second.encode(data))


@pytest.mark.parametrize(
    ("code", "dimension", "message"),
    [("PQ7x8", 32, "do not divide"), ("LSH", 32, "expected PQ"), ("SQ3", 32, "expected PQ")],
)
def test_unusable_residual_codes_are_refused(code, dimension, message):
    with pytest.raises(ValueError, match=message):
        check_residual_code(code, dimension)


def test_bad_training_input_is_refused(tmp_path):
    data = anisotropic(100, 16)
    with pytest.raises(ValueError, match="between 1 and the vector size 16"):
        train_codec(data, reduced_dimension=32)
    with pytest.raises(ValueError, match="non-empty"):
        train_codec(np.zeros((0, 16), dtype=np.float32))
    (tmp_path / "not.faiss").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not a readable FAISS codec"):
        MultiVectorCodec.load(tmp_path / "not.faiss")


def test_default_nlist_grows_with_the_collection():
    assert default_nlist(0) == 64
    assert default_nlist(1_600_000) == 4096
    assert default_nlist(141_000_000) == 65536

"""CUDA encoding agrees with CPU encoding (skipped without a CUDA device by the ``gpu`` marker hook in conftest)."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = ["supersonic flow over a thin wing", "boundary layer transition", "heat transfer"]


@pytest.mark.gpu
def test_cuda_float32_matches_cpu(tiny_dream_dir):
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder

    cpu = DiffRetrieverDocumentEncoder(tiny_dream_dir, representation="multi", max_length=64)
    cuda = DiffRetrieverDocumentEncoder(tiny_dream_dir, representation="multi", max_length=64, device="cuda")
    for a, b in zip(cpu.encode(TEXTS), cuda.encode(TEXTS), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-3)
    assert np.allclose(cpu.encode_all(TEXTS).dense, cuda.encode_all(TEXTS).dense, atol=1e-3)

"""Shared tiny models for the encoder tests (loaded once, read-only)."""

from __future__ import annotations

import pytest

from pyserini_diffretriever.backbones import load_backbone


@pytest.fixture(scope="session")
def dream_model(tiny_dream_dir):
    from pyserini_diffretriever.encoders import DiffRetrieverModel

    return DiffRetrieverModel(load_backbone(tiny_dream_dir, dtype="float32"))


@pytest.fixture(scope="session")
def llada_model(tiny_llada_dir):
    from pyserini_diffretriever.encoders import DiffRetrieverModel

    return DiffRetrieverModel(load_backbone(tiny_llada_dir, dtype="float32"))

"""Fixtures for representation tests: the real Dream tokenizer and loaded tiny backbones."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import Qwen2Tokenizer

from pyserini_diffretriever.backbones import load_backbone

DREAM_RESOURCES = Path(__file__).resolve().parents[2] / "pyserini_diffretriever" / "resources" / "dream"


@pytest.fixture(scope="session")
def dream_tokenizer():
    """The real Dream tokenizer files, loaded as the backbone loader does (Qwen2Tokenizer, left padding)."""
    return Qwen2Tokenizer.from_pretrained(str(DREAM_RESOURCES), padding_side="left")


@pytest.fixture(scope="session")
def tiny_backbones(tiny_dream_dir, tiny_llada_dir):
    """``(family, dtype) -> LoadedBackbone``, loaded lazily and shared read-only."""
    cache = {}
    dirs = {"dream": tiny_dream_dir, "llada": tiny_llada_dir}

    def get(family: str, dtype: str = "float32"):
        if (family, dtype) not in cache:
            cache[family, dtype] = load_backbone(dirs[family], dtype=dtype)
        return cache[family, dtype]

    return get

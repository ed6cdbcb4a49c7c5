"""Shared test fixtures: tiny random checkpoints in the real on-disk layouts, built once per run.

The checkpoints are written by :mod:`pyserini_diffretriever.fixtures` (the same command users can run)
into a session temp folder; tests must treat them as read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CRANFIELD_DIR = REPO_ROOT / "examples" / "cranfield"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config, items) -> None:
    """Skip ``@pytest.mark.gpu`` tests when no CUDA device is visible (torch is imported only if one is marked)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (pytest.mark.gpu)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dream_dir(tmp_path_factory) -> Path:
    from pyserini_diffretriever.fixtures import write_tiny_dream

    return write_tiny_dream(tmp_path_factory.mktemp("tiny-dream") / "model")


@pytest.fixture(scope="session")
def tiny_llada_dir(tmp_path_factory) -> Path:
    from pyserini_diffretriever.fixtures import write_tiny_llada

    return write_tiny_llada(tmp_path_factory.mktemp("tiny-llada") / "model")

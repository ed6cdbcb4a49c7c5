"""Shared test fixtures: tiny random checkpoints in the real on-disk layouts, built once per run.

The checkpoints are written by :mod:`pyserini_diffretriever.fixtures` (the same command users can run)
into a session temp folder; tests must treat them as read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CRANFIELD_DIR = REPO_ROOT / "examples" / "cranfield"


@pytest.fixture(scope="session")
def tiny_dream_dir(tmp_path_factory) -> Path:
    from pyserini_diffretriever.fixtures import write_tiny_dream

    return write_tiny_dream(tmp_path_factory.mktemp("tiny-dream") / "model")


@pytest.fixture(scope="session")
def tiny_llada_dir(tmp_path_factory) -> Path:
    from pyserini_diffretriever.fixtures import write_tiny_llada

    return write_tiny_llada(tmp_path_factory.mktemp("tiny-llada") / "model")

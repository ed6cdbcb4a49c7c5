"""Doctests: ``make test`` runs the docstring examples of the package (``--doctest-modules`` in pyproject.toml).

Why this hook: with ``--doctest-modules`` pytest imports every ``.py`` file it walks, to look for examples. Only the
files that hold an example (``>>>``) are worth importing: the others would only add import time (torch, FAISS,
transformers) and, for the test helpers that are scripts (``tests/**/..._child.py``), run code meant for a child
process. Test modules and conftest files are collected as usual. The examples' ``tempfile.mkdtemp()`` folders land
in the test's ``tmp_path``, so a test run leaves nothing behind in the system's temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Skip ``.py`` files that are neither tests nor conftest files and hold no docstring example."""
    if collection_path.suffix != ".py" or not config.getoption("doctestmodules"):
        return None
    name = collection_path.name
    if name == "conftest.py" or name.startswith("test_"):
        return None
    try:
        has_example = ">>>" in collection_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return None if has_example else True


@pytest.fixture(autouse=True)
def _doctest_temporary_folder(request, monkeypatch):
    """Point ``tempfile`` at ``tmp_path`` while a docstring example runs (other tests are left alone)."""
    if type(request.node).__name__ == "DoctestItem":
        monkeypatch.setattr(tempfile, "tempdir", str(request.getfixturevalue("tmp_path")))

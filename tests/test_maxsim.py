"""The one single-pair MaxSim lives in a leaf module, so the layers that use it do not import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import pyserini_diffretriever
from pyserini_diffretriever.maxsim import maxsim

PACKAGE_DIR = Path(pyserini_diffretriever.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the package modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            names.add(f"{base}.{node.module}" if base and node.module else base or node.module or "")
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_representation_does_not_import_search():
    for path in sorted((PACKAGE_DIR / "representation").glob("*.py")):
        imported = _imported_modules(path)
        assert not any(name.startswith("pyserini_diffretriever.search") for name in imported), (path, imported)


def test_the_layers_share_the_leaf_maxsim():
    from pyserini_diffretriever.representation.dense import maxsim as representation_maxsim
    from pyserini_diffretriever.search.scoring import maxsim as search_maxsim

    assert representation_maxsim is search_maxsim is maxsim
    assert _imported_modules(PACKAGE_DIR / "maxsim.py") == {"__future__", "numpy"}  # a leaf


def test_maxsim_clamps_each_query_vector_at_zero():
    query = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert maxsim(query, np.array([[1.0, 0.0]])) == 1.0  # the second query vector's -1 counts as 0
    assert maxsim(query, np.zeros((0, 2))) == 0.0
    with pytest.raises(ValueError, match="maxsim needs"):
        maxsim(query, np.zeros((1, 3)))

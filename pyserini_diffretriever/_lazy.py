"""Lazily resolved package attributes (PEP 562), shared by the packages whose names pull in heavy libraries.

Why: importing one light module of a package runs the package's ``__init__`` first; when that ``__init__``
imports every submodule, a torch-free module (``representation.bucketing``) costs torch, transformers and NLTK
(seconds per process). A package lists ``{public name: submodule}`` and gets its ``__getattr__`` from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``package.<names[name]>`` when ``name`` is first used."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

"""Lazily resolved package attributes: every listed name resolves to its submodule's object, others raise."""

from __future__ import annotations

import importlib

import pytest

from pyserini_diffretriever._lazy import lazy_getattr

LAZY_PACKAGES = ["pyserini_diffretriever", "pyserini_diffretriever.representation", "pyserini_diffretriever.training"]


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_public_name_resolves_to_the_object_of_its_submodule(package):
    module = importlib.import_module(package)
    for name, submodule in module._LAZY.items():
        assert getattr(module, name) is getattr(importlib.import_module(f"{package}.{submodule}"), name), name


def test_an_unknown_name_is_an_attribute_error_naming_the_package():
    lookup = lazy_getattr("pyserini_diffretriever.representation", {"maxsim": "dense"})
    assert lookup("maxsim") is importlib.import_module("pyserini_diffretriever.representation.dense").maxsim
    with pytest.raises(AttributeError, match="'pyserini_diffretriever.representation' has no attribute 'nope'"):
        lookup("nope")

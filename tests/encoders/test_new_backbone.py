"""A new backbone family takes one registry entry: registered here, in this test alone, and encoded with.

The family reuses the tiny LLaDA fixture's module under a new ``model_type`` with its own K defaults; nothing
else in the package is edited, so the encoders must take K and the stop set from the registry entry.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from pyserini_diffretriever import backbones
from pyserini_diffretriever.backbones import BackboneFamily, llada

FAKE_TYPE = "tiny-fake-diffusion"


def _fake_module() -> SimpleNamespace:
    def make_spec(*args, **kwargs):
        return dataclasses.replace(llada.make_spec(*args, **kwargs), model_type=FAKE_TYPE)

    return SimpleNamespace(
        MODEL_TYPE=FAKE_TYPE,
        DEFAULT_K={"query": 2, "passage": 3},
        STOP_SET="special-except-mask",
        LORA_TARGETS=llada.LORA_TARGETS,
        LORA_TASK_TYPE=llada.LORA_TASK_TYPE,
        build_model=llada.build_model,
        load_tokenizer=llada.load_tokenizer,
        make_spec=make_spec,
    )


@pytest.fixture
def fake_checkpoint(tmp_path, tiny_llada_dir, monkeypatch):
    model_dir = shutil.copytree(tiny_llada_dir, tmp_path / "fake")
    config = json.loads((model_dir / "config.json").read_text())
    config["model_type"] = FAKE_TYPE
    (model_dir / "config.json").write_text(json.dumps(config))
    monkeypatch.setitem(backbones.BACKBONES, FAKE_TYPE, BackboneFamily.from_module(_fake_module()))  # the one line
    return model_dir


def test_a_registered_family_encodes_with_its_own_defaults(fake_checkpoint):
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder, DiffRetrieverQueryEncoder, default_k

    documents = DiffRetrieverDocumentEncoder(fake_checkpoint, representation="multi", max_length=64)
    queries = DiffRetrieverQueryEncoder(documents.model, representation="multi", max_length=64)
    assert documents.model.spec.model_type == FAKE_TYPE
    assert (documents.k, queries.k) == (3, 2) == (default_k(FAKE_TYPE, "passage"), default_k(FAKE_TYPE, "query"))
    assert documents.model.stop_ids == frozenset(documents.model.tokenizer.all_special_ids) - {
        documents.model.spec.mask_token_id
    }
    vectors = documents.encode(["a wing in supersonic flow", "boundary layer"])
    assert len(vectors) == 2 and all(1 <= v.shape[0] <= 3 and np.isfinite(v).all() for v in vectors)
    assert documents.settings()["model_type"] == FAKE_TYPE and documents.settings()["k"] == 3


def test_an_unregistered_family_has_no_default_k():
    from pyserini_diffretriever.encoders import default_k

    with pytest.raises(ValueError, match="no default K"):
        default_k(FAKE_TYPE, "query")

"""The Pyserini encoder classes and the encode CLI with an autoregressive (PromptReps) backbone, docs/method.md §9."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.backbones import load_backbone
from pyserini_diffretriever.encoders import (
    DiffRetrieverDocumentEncoder,
    DiffRetrieverModel,
    DiffRetrieverQueryEncoder,
    default_k,
)
from pyserini_diffretriever.fixtures import write_tiny_llama, write_tiny_qwen2
from pyserini_diffretriever.representation.content_words import content_token_ids

pytestmark = pytest.mark.jvm  # importing pyserini.encode starts the JVM in Pyserini 2.3

DOCS = [
    "Volcanic eruptions inject sulfate aerosols into the stratosphere and cool the climate.",
    "Photosynthesis converts light into chemical energy.",
    "lift and drag of thin wings at supersonic speeds",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("ar-encoders")
    return {"qwen2": write_tiny_qwen2(root / "qwen2"), "llama": write_tiny_llama(root / "llama")}


@pytest.fixture(scope="module")
def models(folders):
    return {name: DiffRetrieverModel(load_backbone(folder)) for name, folder in folders.items()}


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_document_outputs_have_the_pyserini_types(models, which):
    model = models[which]
    dense = DiffRetrieverDocumentEncoder(model, representation="dense").encode(DOCS)
    assert isinstance(dense, np.ndarray) and dense.dtype == np.float32 and dense.shape == (3, 64)
    multi = DiffRetrieverDocumentEncoder(model, representation="multi").encode(DOCS)
    assert len(multi) == 3
    for vectors in multi:
        assert vectors.dtype == np.float32 and vectors.shape[1] == 64 and 1 <= vectors.shape[0] <= 4
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    impact = DiffRetrieverDocumentEncoder(model, representation="impact").encode(DOCS)
    assert len(impact) == 3 and all(isinstance(v, dict) for v in impact)
    assert all(type(t) is str and type(w) is int and w >= 1 for v in impact for t, w in v.items())
    assert any(impact)


@pytest.mark.parametrize("which", ["qwen2", "llama"])
def test_one_pass_gives_the_same_vectors_as_separate_encodes(models, which):
    model = models[which]
    everything = DiffRetrieverDocumentEncoder(model).encode_all(DOCS)
    np.testing.assert_allclose(everything.dense, DiffRetrieverDocumentEncoder(model).encode(DOCS), atol=1e-6)
    # the single vector is the mean of the normalised kept slot vectors (same code as DiffRetriever)
    for i, vectors in enumerate(everything.multi):
        np.testing.assert_allclose(everything.dense[i], vectors.mean(axis=0), atol=1e-5)
    # sparse ids come from the text's own content words only
    allowed = content_token_ids(DOCS, model.tokenizer)
    for ids, row in zip(everything.impact_ids, allowed):
        assert set(ids) <= set(row)


def test_query_encoder_shares_the_model_and_defaults_to_n4(models):
    model = models["qwen2"]
    documents = DiffRetrieverDocumentEncoder(model, representation="multi")
    queries = DiffRetrieverQueryEncoder(documents.model, representation="dense")
    assert queries.model is documents.model
    assert documents.k == queries.k == 4 == default_k("qwen2", "query") == default_k("llama", "passage")
    vector = queries.encode("volcanic climate cooling")
    assert vector.shape == (64,) and vector.dtype == np.float32
    assert DiffRetrieverQueryEncoder(model, representation="impact").encode("the of and") == {}


def test_settings_record_the_family(models):
    settings = DiffRetrieverDocumentEncoder(models["llama"], k=2).settings()
    assert settings["family"] == "autoregressive" and settings["model_type"] == "llama"
    assert settings["mask_token_id"] is None and settings["k"] == 2
    json.dumps(settings)  # goes into manifests


def test_forward_calls_per_batch_are_one_plus_n_minus_one(models, monkeypatch):
    model = models["qwen2"]
    calls = []
    original = type(model.backbone.model).causal_forward
    monkeypatch.setattr(
        type(model.backbone.model), "causal_forward", lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw)
    )
    DiffRetrieverDocumentEncoder(model, k=6, batch_size=2, representation="multi").encode(DOCS)
    assert len(calls) == 2 * 6  # two batches, each a prompt pass + 5 single-token steps


def test_diffusion_only_options_are_refused(models):
    with pytest.raises(ValueError, match="autoregressive"):
        DiffRetrieverDocumentEncoder(models["qwen2"], denoise_steps=2)
    with pytest.raises(ValueError, match="autoregressive"):
        DiffRetrieverQueryEncoder(models["qwen2"], logits="shifted")


def test_loads_by_path(folders):
    encoder = DiffRetrieverDocumentEncoder(str(folders["llama"]), representation="dense", max_length=128)
    assert encoder.model.autoregressive and encoder.encode(DOCS[:1]).shape == (1, 64)


def test_encode_cli_accepts_an_autoregressive_backbone(folders, tmp_path):
    from pyserini_diffretriever.cli import encode as encode_cli
    from pyserini_diffretriever.writers import MultiVectorFolder, iter_vector_records, read_manifest

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "contents": text}) + "\n" for i, text in enumerate(DOCS)))
    out = tmp_path / "out"
    status = encode_cli.main(
        [
            "input",
            "--corpus",
            str(corpus),
            "encoder",
            "--encoder",
            str(folders["qwen2"]),
            "--representation",
            "dense",
            "multi",
            "impact",
            "--device",
            "cpu",
            "--k",
            "3",
            "output",
            "--embeddings",
            str(out),
            "--no-progress",
        ]
    )
    assert status == 0
    manifest = read_manifest(out / "multi")
    assert manifest["encoder"]["family"] == "autoregressive" and manifest["encoder"]["k"] == 3
    assert manifest["num_docs"] == 3
    assert sorted(MultiVectorFolder(out / "multi").docids) == ["d0", "d1", "d2"]
    assert len(list(iter_vector_records(out / "impact"))) == 3

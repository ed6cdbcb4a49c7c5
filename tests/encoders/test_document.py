"""DiffRetrieverDocumentEncoder: the Pyserini DocumentEncoder contract on tiny Dream / LLaDA checkpoints."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from pyserini.encode import DocumentEncoder, JsonlRepresentationWriter

from pyserini_diffretriever.encoders import (
    SHARED_SETTINGS,
    DiffRetrieverDocumentEncoder,
    DiffRetrieverQueryEncoder,
    default_k,
)

pytestmark = pytest.mark.jvm  # importing pyserini.encode starts the JVM in Pyserini 2.3

TEXTS = [
    "Volcanic eruptions inject sulfate aerosols into the stratosphere and cool the climate.",
    "Photosynthesis converts light into chemical energy.",
    "Diffusion language models predict all masked tokens in parallel; DiffRetriever reads K of them. " * 3,
]
TITLES = ["Volcanoes", None, "Retrieval"]


@pytest.fixture(scope="module")
def encoders(dream_model):
    return {
        rep: DiffRetrieverDocumentEncoder(dream_model, representation=rep, max_length=128)
        for rep in ("dense", "multi", "impact")
    }


def test_is_a_pyserini_document_encoder(encoders):
    assert all(isinstance(e, DocumentEncoder) for e in encoders.values())


def test_dense_output(encoders, dream_model):
    out = encoders["dense"].encode(TEXTS, titles=TITLES)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (3, dream_model.hidden_size)
    assert out.flags["C_CONTIGUOUS"]
    assert np.all(np.linalg.norm(out, axis=1) <= 1 + 1e-5)  # a mean of unit vectors, not re-normalised
    assert encoders["dense"].dimension == dream_model.hidden_size


def test_multi_output(encoders, dream_model):
    out = encoders["multi"].encode(TEXTS)
    assert isinstance(out, list) and len(out) == 3
    for vectors in out:
        assert vectors.dtype == np.float32 and vectors.ndim == 2
        assert 1 <= vectors.shape[0] <= default_k("Dream", "passage") == encoders["multi"].k == 16
        assert vectors.shape[1] == dream_model.hidden_size
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_impact_output_has_plain_int_weights(encoders, dream_model):
    out = encoders["impact"].encode(TEXTS, titles=TITLES)
    assert isinstance(out, list) and len(out) == 3 and any(out)
    terms = dream_model.terms
    for vector in out:
        for term, weight in vector.items():
            assert type(term) is str and type(weight) is int and weight >= 1
            assert not any(ch.isspace() for ch in term)
    # the title's content words are allowed terms of the first passage
    allowed = {
        terms.term(i)
        for w in (
            "volcanoes",
            "volcanic",
            "eruptions",
            "inject",
            "sulfate",
            "aerosols",
            "stratosphere",
            "cool",
            "climate",
        )
        for i in dream_model.tokenizer.encode(w, add_special_tokens=False)
    }
    assert set(out[0]) <= allowed


def test_titles_are_joined_with_the_separator(encoders):
    with_titles = encoders["dense"].encode(TEXTS[:1], titles=TITLES[:1])
    joined = encoders["dense"].encode([TITLES[0] + ". " + TEXTS[0]])
    np.testing.assert_array_equal(with_titles, joined)


def test_encode_all_matches_single_representations(encoders):
    both = encoders["dense"].encode_all(TEXTS, titles=TITLES)
    assert len(both) == 3
    np.testing.assert_allclose(both.dense, encoders["dense"].encode(TEXTS, titles=TITLES), atol=1e-6)
    for a, b in zip(both.multi, encoders["multi"].encode(TEXTS, titles=TITLES)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert both.impact == encoders["impact"].encode(TEXTS, titles=TITLES)
    terms = encoders["impact"].model.terms
    assert [{terms.term(i): w for i, w in v.items()} for v in both.impact_ids] == both.impact


def test_input_order_is_kept_and_batching_does_not_matter(dream_model):
    one_at_a_time = DiffRetrieverDocumentEncoder(dream_model, batch_size=1, max_length=128)
    batched = DiffRetrieverDocumentEncoder(dream_model, batch_size=8, max_length=128)
    expected = np.stack([one_at_a_time.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched.encode(TEXTS), expected, atol=1e-5)


def test_empty_input(encoders, dream_model):
    assert encoders["dense"].encode([]).shape == (0, dream_model.hidden_size)
    assert encoders["impact"].encode([]) == []


def test_max_length_override_and_fp16_on_cpu(encoders, caplog):
    short = encoders["dense"].encode(TEXTS[2:], max_length=60)
    full = encoders["dense"].encode(TEXTS[2:])
    assert not np.allclose(short, full)  # the long passage was cut
    with caplog.at_level(logging.WARNING):
        half = encoders["dense"].encode(TEXTS[:1], fp16=True, add_sep=False)  # Pyserini CLI keywords accepted
    assert "fp16=True ignored" in caplog.text
    np.testing.assert_array_equal(half, encoders["dense"].encode(TEXTS[:1]))


def test_jsonl_writer_round_trip(encoders, tmp_path):
    batch = {"id": ["d1", "d2"], "text": TEXTS[:2], "vector": encoders["impact"].encode(TEXTS[:2])}
    writer = JsonlRepresentationWriter(str(tmp_path))
    with writer:  # Pyserini's __enter__ returns None
        writer.write(batch, ["text"])
    rows = [json.loads(line) for line in (tmp_path / "embeddings.jsonl").read_text().splitlines()]
    assert [r["vector"] for r in rows] == batch["vector"]


def test_settings_record_what_must_match(encoders, dream_model):
    doc = encoders["dense"].settings()
    query = DiffRetrieverQueryEncoder(dream_model).settings()
    json.dumps(doc)
    assert doc["side"] == "passage" and query["side"] == "query"
    assert doc["k"] == 16 and query["k"] == 4
    assert doc["model_type"] == "Dream" and doc["hidden_size"] == dream_model.hidden_size
    assert doc["vocabulary_sha256"] == query["vocabulary_sha256"] and len(doc["vocabulary_sha256"]) == 64
    assert doc["prompt"] == "few" and doc["prompt_sha256"] != query["prompt_sha256"]
    for key in (
        "backbone",
        "max_length",
        "quantization",
        "rounding",
        "sparse_top_k",
        "logits",
        "denoise_steps",
        "adapter",
        "representation",
        "prompt_ids_sha256",
        "tokenizer_size",
    ):
        assert key in doc
    assert (doc["quantization"], doc["rounding"], doc["sparse_top_k"], doc["logits"], doc["denoise_steps"]) == (
        100.0,
        "truncate",
        128,
        "unshifted",
        1,
    )
    assert all(doc[key] == query[key] for key in SHARED_SETTINGS)


def test_llada_defaults(llada_model):
    encoder = DiffRetrieverDocumentEncoder(llada_model, representation="multi", max_length=128)
    assert encoder.k == 4
    out = encoder.encode(TEXTS[:2])
    assert all(1 <= v.shape[0] <= 4 for v in out)


def test_loading_by_path(tiny_dream_dir):
    encoder = DiffRetrieverDocumentEncoder(model_name=str(tiny_dream_dir), k=2, max_length=100)
    assert encoder.model.spec.model_type == "Dream" and encoder.k == 2
    assert encoder.encode(["hello"]).shape == (1, encoder.dimension)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"representation": "sparse"}, ValueError, "representation='sparse'"),
        ({"prompt": "four"}, ValueError, "prompt='four'"),
        ({"logits": "left"}, ValueError, "logits='left'"),
        ({"rounding": "floor"}, ValueError, "rounding='floor'"),
        ({"max_length": 20}, ValueError, "leaves no room for text"),
        ({"k": 0}, ValueError, "k=0"),
        ({"denoise_steps": 0}, ValueError, "denoise_steps=0"),
        ({"batch_size": 0}, ValueError, "batch_size=0"),
        ({"pooling": "cls"}, TypeError, "unexpected keyword arguments \\['pooling'\\]"),
    ],
)
def test_constructor_validation(dream_model, kwargs, error, message):
    with pytest.raises(error, match=message):
        DiffRetrieverDocumentEncoder(dream_model, **kwargs)


def test_shifted_logits_only_for_dream(dream_model, llada_model):
    assert DiffRetrieverDocumentEncoder(dream_model, logits="shifted").settings()["logits"] == "shifted"
    with pytest.raises(ValueError, match="logits='shifted'"):
        DiffRetrieverDocumentEncoder(llada_model, logits="shifted")


def test_model_name_is_required():
    with pytest.raises(TypeError, match="model_name_or_path is required"):
        DiffRetrieverDocumentEncoder()

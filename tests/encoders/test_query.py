"""DiffRetrieverQueryEncoder: the Pyserini QueryEncoder contract, including a real FaissSearcher round trip."""

from __future__ import annotations

import numpy as np
import pytest
from pyserini.encode import QueryEncoder

from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder, DiffRetrieverQueryEncoder

pytestmark = pytest.mark.jvm  # importing pyserini.encode / pyserini.search starts the JVM in Pyserini 2.3

QUERIES = ["what cools the climate after a volcanic eruption", "light into chemical energy", "diffusion retrieval"]
DOCS = {
    "volcano": "Volcanic eruptions inject sulfate aerosols into the stratosphere and cool the climate.",
    "plants": "Photosynthesis converts light into chemical energy.",
    "dllm": "Diffusion language models predict all masked tokens in parallel.",
}


@pytest.fixture(scope="module")
def encoders(dream_model):
    return {rep: DiffRetrieverQueryEncoder(dream_model, representation=rep) for rep in ("dense", "multi", "impact")}


def test_is_a_pyserini_query_encoder(encoders):
    for encoder in encoders.values():
        assert isinstance(encoder, QueryEncoder)
        assert encoder.has_model and not encoder.has_encoded_query
        assert encoder.k == 4


def test_dense_query_is_a_1d_float32_vector(encoders, dream_model):
    vector = encoders["dense"].encode(QUERIES[0])
    assert isinstance(vector, np.ndarray) and vector.dtype == np.float32 and vector.shape == (dream_model.hidden_size,)
    batch = encoders["dense"].encode_batch(QUERIES)
    assert batch.shape == (3, dream_model.hidden_size) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0], vector, atol=1e-5)


def test_multi_and_impact_queries(encoders, dream_model):
    vectors = encoders["multi"].encode(QUERIES[0])
    assert vectors.dtype == np.float32 and vectors.shape[1] == dream_model.hidden_size and 1 <= vectors.shape[0] <= 4
    weights = encoders["impact"].encode(QUERIES[0])
    assert isinstance(weights, dict)
    assert all(type(t) is str and type(w) is int and w >= 1 for t, w in weights.items())
    assert encoders["impact"].encode("the of and") == {}  # no content words: an empty query vector
    assert len(encoders["impact"].encode_batch(QUERIES)) == 3


def test_encode_wants_one_string(encoders):
    with pytest.raises(TypeError, match="expects one query string"):
        encoders["dense"].encode(QUERIES)


def test_weights_are_shared_with_a_document_encoder(tiny_dream_dir):
    documents = DiffRetrieverDocumentEncoder(str(tiny_dream_dir), max_length=128)
    queries = DiffRetrieverQueryEncoder(documents.model)
    assert queries.model is documents.model
    assert queries.k == 4 and documents.k == 16


def test_faiss_searcher_round_trip(dream_model, encoders, tmp_path):
    faiss = pytest.importorskip("faiss")
    from pyserini.search.faiss import FaissSearcher

    documents = DiffRetrieverDocumentEncoder(dream_model, max_length=128)
    vectors = documents.encode(list(DOCS.values()))
    index = faiss.IndexFlatIP(documents.dimension)
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "index"))
    (tmp_path / "docid").write_text("\n".join(DOCS) + "\n")

    searcher = FaissSearcher(str(tmp_path), encoders["dense"])
    hits = searcher.search(QUERIES[1], k=3)
    expected = vectors @ encoders["dense"].encode(QUERIES[1])
    assert [h.docid for h in hits] == [list(DOCS)[i] for i in np.argsort(-expected)]
    np.testing.assert_allclose([h.score for h in hits], np.sort(expected)[::-1], rtol=1e-4)
    batch = searcher.batch_search(QUERIES, ["q1", "q2", "q3"], k=2)
    assert [h.docid for h in batch["q2"]] == [h.docid for h in hits[:2]]

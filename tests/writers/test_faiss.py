"""Dense FAISS folders: Pyserini's FaissSearcher opens them as is and ranks by exact inner product."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.writers import FaissFlatWriter, WriterError, read_faiss_docids, read_manifest


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _write(out, ids, vectors, batch=3, **kwargs):
    with FaissFlatWriter(out, {"backbone": "fake"}, **kwargs) as writer:
        for start in range(0, len(ids), batch):
            writer.write({"id": ids[start : start + batch], "vector": vectors[start : start + batch]})
    return writer


def test_folder_layout_manifest_and_vectors(tmp_path):
    import faiss

    ids = [f"doc{i}" for i in range(7)]
    vectors = _vectors(7, 5)
    _write(tmp_path / "dense", ids, vectors.astype(np.float64), shard=(1, 3))  # float64 input is converted
    assert read_faiss_docids(tmp_path / "dense") == ids
    index = faiss.read_index(str(tmp_path / "dense" / "index"))
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == 7 and index.d == 5
    np.testing.assert_array_equal(index.reconstruct_n(0, 7), vectors)
    manifest = read_manifest(tmp_path / "dense", "dense")
    assert (manifest["num_docs"], manifest["dimension"], manifest["shard"]) == (7, 5, {"id": 1, "num": 3})
    assert manifest["encoder"] == {"backbone": "fake"}


@pytest.mark.jvm
def test_faiss_searcher_opens_folder_and_ranks_by_inner_product(tmp_path):
    from pyserini.search.faiss import FaissSearcher

    import pyserini_diffretriever  # noqa: F401  (Java first: importing pyserini.search starts the JVM)

    ids = [f"d{i}" for i in range(12)]
    vectors = _vectors(12, 6, seed=1)
    _write(tmp_path / "dense", ids, vectors, batch=5)
    query = _vectors(1, 6, seed=2)[0]

    class FixedQueryEncoder:
        def encode(self, text):
            return query

    searcher = FaissSearcher(str(tmp_path / "dense"), FixedQueryEncoder())
    hits = searcher.search("any query", k=4)
    scores = vectors @ query
    expected = np.argsort(-scores)[:4]
    assert [h.docid for h in hits] == [ids[i] for i in expected]
    np.testing.assert_allclose([h.score for h in hits], scores[expected], rtol=1e-5)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"id": ["b"], "vector": np.ones((1, 3), np.float32)}, "dimension 3, expected 4"),
        ({"id": ["b"], "vector": np.full((1, 4), np.nan, np.float32)}, "document 'b' has NaN"),
        ({"id": ["a"], "vector": np.ones((1, 4), np.float32)}, "duplicate document id 'a'"),
        ({"id": ["b", "c"], "vector": np.ones((1, 4), np.float32)}, r"shape \[2, H\]"),
        ({"id": ["b\nc"], "vector": np.ones((1, 4), np.float32)}, "line break"),
    ],
)
def test_bad_batches_raise_and_leave_no_manifest(tmp_path, second, message):
    with pytest.raises(WriterError, match=message), FaissFlatWriter(tmp_path / "dense") as writer:
        writer.write({"id": ["a"], "vector": np.ones((1, 4), np.float32)})
        writer.write(second)
    assert not (tmp_path / "dense" / "manifest.json").exists()


def test_empty_output_and_non_empty_folder_are_errors(tmp_path):
    with pytest.raises(WriterError, match="no documents"), FaissFlatWriter(tmp_path / "dense"):
        pass
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"), FaissFlatWriter(tmp_path / "full"):
        pass
    with pytest.raises(RuntimeError, match="context manager"):
        FaissFlatWriter(tmp_path / "unused").write({"id": ["a"], "vector": np.ones((1, 2))})


@pytest.mark.parametrize(("n", "d"), [(1, 3), (9, 16), (1000, 64)])
def test_streamed_index_file_is_byte_identical_to_faiss_write_index(tmp_path, n, d):
    import faiss

    from pyserini_diffretriever.writers.faiss import flat_index_header, write_flat_ip_index

    vectors = np.random.default_rng(n).standard_normal((n, d)).astype("<f4")
    vectors.tofile(tmp_path / "raw")
    write_flat_ip_index(tmp_path / "raw", n, d, tmp_path / "ours", chunk_bytes=1000)
    index = faiss.IndexFlatIP(d)
    index.add(vectors)
    faiss.write_index(index, str(tmp_path / "theirs"))
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "theirs").read_bytes()
    l2 = faiss.IndexFlatL2(d)
    l2.add(vectors)
    assert faiss.serialize_index(l2).tobytes().startswith(flat_index_header(n, d, "l2"))


def test_read_flat_header_reads_what_faiss_writes_and_refuses_the_rest(tmp_path):
    """The one reader of the flat layout (the verifier and the ANN builder use it)."""
    import faiss

    from pyserini_diffretriever.writers.faiss import FLAT_HEADER_BYTES, read_flat_header

    for metric, index in (("inner_product", faiss.IndexFlatIP(8)), ("l2", faiss.IndexFlatL2(8))):
        index.add(np.arange(40, dtype="float32").reshape(5, 8))
        path = tmp_path / metric
        faiss.write_index(index, str(path))
        header = read_flat_header(path)
        assert (header.metric, header.dimension, header.num_vectors, header.elements) == (metric, 8, 5, 40)
        assert header.expected_size == path.stat().st_size and header.row_offset(2) == FLAT_HEADER_BYTES + 64
        assert np.fromfile(path, dtype="<f4", offset=header.row_offset(2), count=8).tolist() == list(range(16, 24))
    hnsw = tmp_path / "hnsw"
    faiss.write_index(faiss.IndexHNSWFlat(8, 4), str(hnsw))
    assert read_flat_header(hnsw) is None  # not flat: open it with FAISS
    (tmp_path / "cut").write_bytes((tmp_path / "l2").read_bytes()[:20])
    with pytest.raises(WriterError, match="truncated"):
        read_flat_header(tmp_path / "cut")

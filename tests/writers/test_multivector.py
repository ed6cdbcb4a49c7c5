"""Multi-vector folders: offsets/ids/rows agree, .npy is a normal numpy file, memory stays per batch."""

from __future__ import annotations

import numpy as np
import pytest

from pyserini_diffretriever.writers import MultiVectorFolder, MultiVectorWriter, WriterError, read_manifest


def _docs(n: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(rng.integers(1, 5)), dim)).astype(np.float32) for _ in range(n)]


def test_round_trip_offsets_ids_and_rows(tmp_path):
    docs = _docs(9, 6)
    ids = [f"doc-{i}" for i in range(9)]
    with MultiVectorWriter(tmp_path / "multi", {"backbone": "fake"}, shard=(2, 4)) as writer:
        for start in range(0, 9, 4):
            writer.write({"id": ids[start : start + 4], "vector": docs[start : start + 4]})
    vectors = np.load(tmp_path / "multi" / "vectors.npy")  # a plain .npy file
    offsets = np.load(tmp_path / "multi" / "offsets.npy")
    assert vectors.dtype == np.float32 and vectors.shape == (sum(len(d) for d in docs), 6)
    assert (
        offsets.dtype == np.int64
        and offsets.tolist() == np.concatenate([[0], np.cumsum([len(d) for d in docs])]).tolist()
    )
    for i, doc in enumerate(docs):
        np.testing.assert_array_equal(vectors[offsets[i] : offsets[i + 1]], doc)
    folder = MultiVectorFolder(tmp_path / "multi")
    assert folder.docids == ids and len(folder) == 9
    np.testing.assert_array_equal(folder.document(4), docs[4])
    assert isinstance(folder.vectors, np.memmap)
    manifest = read_manifest(tmp_path / "multi", "multi")
    assert (manifest["num_docs"], manifest["dimension"], manifest["dtype"], manifest["num_vectors"]) == (
        9,
        6,
        "float32",
        len(vectors),
    )
    assert manifest["shard"] == {"id": 2, "num": 4}


def test_float16_storage(tmp_path):
    docs = _docs(3, 4)
    with MultiVectorWriter(tmp_path / "multi", dtype="float16") as writer:
        writer.write({"id": ["a", "b", "c"], "vector": docs})
    folder = MultiVectorFolder(tmp_path / "multi")
    assert folder.vectors.dtype == np.float16 and folder.manifest["dtype"] == "float16"
    np.testing.assert_allclose(folder.document(2), docs[2], rtol=1e-3, atol=1e-3)
    with pytest.raises(WriterError, match="after conversion to float16"):
        with MultiVectorWriter(tmp_path / "overflow", dtype="float16") as writer:
            writer.write({"id": ["a"], "vector": [np.full((1, 4), 1e6, np.float32)]})


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.zeros((0, 4), np.float32), r"shape \[K>=1, H\]"),
        (np.zeros(4, np.float32), r"shape \[K>=1, H\]"),
        (np.zeros((2, 3), np.float32), "dimension 3, expected 4"),
        (np.array([[np.inf, 0, 0, 0]], np.float32), "NaN or infinite"),
    ],
)
def test_bad_documents(tmp_path, matrix, message):
    with pytest.raises(WriterError, match=f"document 'b'.*{message}|{message}"):
        with MultiVectorWriter(tmp_path / "multi") as writer:
            writer.write({"id": ["a", "b"], "vector": [np.ones((2, 4), np.float32), matrix]})
    assert not (tmp_path / "multi" / "manifest.json").exists()


def test_inconsistent_folder_is_detected(tmp_path):
    with MultiVectorWriter(tmp_path / "multi") as writer:
        writer.write({"id": ["a", "b"], "vector": _docs(2, 3)})
    np.save(tmp_path / "multi" / "offsets.npy", np.array([0, 1], np.int64))
    with pytest.raises(WriterError, match=r"offsets.npy is int64 \[2\], expected int64 \[3\].*damaged"):
        MultiVectorFolder(tmp_path / "multi")


def test_rows_go_to_disk_as_they_are_written(tmp_path):
    big = [np.ones((100, 64), np.float32)] * 3  # 75 KiB, well past Python's write buffer
    with MultiVectorWriter(tmp_path / "multi") as writer:
        writer.write({"id": ["a", "b", "c"], "vector": big})
        assert (tmp_path / "multi" / "vectors.npy").stat().st_size >= 128 + 2 * big[0].nbytes
    assert MultiVectorFolder(tmp_path / "multi").vectors.shape == (300, 64)

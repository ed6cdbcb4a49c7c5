"""Building compressed multi-vector folders: contents, manifest, resume, a given codec, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.cli.index import main as index_main
from pyserini_diffretriever.indexing import compress_multi
from pyserini_diffretriever.indexing.codec import MultiVectorCodec
from pyserini_diffretriever.indexing.compress_multi import compress_multivector
from pyserini_diffretriever.writers import verify_output
from pyserini_diffretriever.writers.checkpoint import partial_path
from pyserini_diffretriever.writers.multivector import MultiVectorFolder, read_rows, sample_rows
from tests.search.index_builders import clustered_collection, write_multi_index

OPTIONS = {"reduced_dimension": 16, "nlist": 8, "docs_per_step": 50, "checkpoint_every": 100}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    docs = clustered_collection(400, 6, 48, n_topics=12, seed=5)
    folder = write_multi_index(
        tmp_path_factory.mktemp("src") / "multi", docs, [f"d{i:03d}" for i in range(400)], dtype=np.float16
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["query"] = {"k": 4, "prompt": "few"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, docs


def test_codes_offsets_docids_and_manifest(source, tmp_path):
    folder, docs = source
    manifest = compress_multivector(folder, tmp_path / "c", **OPTIONS)
    assert verify_output(tmp_path / "c", "multi-compressed") == json.loads((tmp_path / "c/manifest.json").read_text())
    codes = np.load(tmp_path / "c/codes.npy")
    codec = MultiVectorCodec.load(tmp_path / "c/codec.faiss")
    floats = np.concatenate(docs).astype(np.float16).astype(np.float32)
    # Streamed in blocks of 50 documents vs encoded at once: BLAS sums the projection in another order for
    # another batch shape, so a value on a rounding boundary may land one quantisation step away.
    differences = np.abs(codes.astype(np.int16) - codec.encode(floats).astype(np.int16))
    assert differences.max() <= 1 and np.count_nonzero(differences) <= 1e-3 * differences.size
    np.testing.assert_array_equal(np.load(tmp_path / "c/offsets.npy"), np.load(folder / "offsets.npy"))
    assert (tmp_path / "c/docid").read_text() == (folder / "docid").read_text()
    assert manifest["kind"] == "multi-compressed" and manifest["num_vectors"] == len(floats)
    assert manifest["code_size"] == codes.shape[1] == 17 and manifest["dimension"] == 48
    assert manifest["query"] == {"k": 4, "prompt": "few"} and manifest["encoder"]["backbone"] == "fake/backbone"
    assert (tmp_path / "c" / manifest["source"]).resolve() == folder.resolve()
    assert manifest["codec"]["reduced_dimension"] == 16 and len(manifest["codec"]["sha256"]) == 64
    assert not partial_path(tmp_path / "c").exists()


def test_an_interrupted_build_resumes_to_the_same_bytes(source, tmp_path, monkeypatch):
    folder, _ = source
    names = ("whole", "resumed")
    compress_multivector(folder, tmp_path / "whole", **OPTIONS)
    real_step, calls = compress_multi._write_step, []

    def failing_step(*args):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("disk full (simulated)")
        real_step(*args)

    monkeypatch.setattr(compress_multi, "_write_step", failing_step)
    with pytest.raises(OSError, match="simulated"):
        compress_multivector(folder, tmp_path / "resumed", **OPTIONS)
    assert partial_path(tmp_path / "resumed").is_dir()
    monkeypatch.setattr(compress_multi, "_write_step", real_step)
    trainings = []
    monkeypatch.setattr(compress_multi, "train_codec", lambda *a, **k: trainings.append(1))
    compress_multivector(folder, tmp_path / "resumed", **OPTIONS)
    assert trainings == []  # the committed codec was reused, not retrained
    for name in ("codes.npy", "offsets.npy", "docid", "codec.faiss"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    estimates = [json.loads((tmp_path / name / "manifest.json").read_text())["recall_estimate"] for name in names]
    assert estimates[0] == estimates[1]  # the running exact top-100 was committed with the codes


def test_other_settings_on_an_unfinished_build_are_refused(source, tmp_path, monkeypatch):
    folder, _ = source

    real_step, calls = compress_multi._write_step, []

    def failing_step(*args):  # the first step is committed, the second fails
        calls.append(1)
        if len(calls) == 2:
            raise OSError("stop")
        real_step(*args)

    monkeypatch.setattr(compress_multi, "_write_step", failing_step)
    options = {**OPTIONS, "checkpoint_every": 1}
    with pytest.raises(OSError):
        compress_multivector(folder, tmp_path / "out", **options)
    monkeypatch.undo()
    assert partial_path(tmp_path / "out").is_dir()
    from pyserini_diffretriever.writers import ResumeError

    with pytest.raises(ResumeError, match="reduced_dimension"):
        compress_multivector(folder, tmp_path / "out", **{**options, "reduced_dimension": 8})


def test_a_given_codec_is_used_as_is(source, tmp_path):
    folder, _ = source
    compress_multivector(folder, tmp_path / "first", **OPTIONS)
    same_blocks = {name: OPTIONS[name] for name in ("docs_per_step", "checkpoint_every")}  # same BLAS batch shapes
    manifest = compress_multivector(folder, tmp_path / "second", codec=tmp_path / "first/codec.faiss", **same_blocks)
    assert (tmp_path / "second/codes.npy").read_bytes() == (tmp_path / "first/codes.npy").read_bytes()
    assert manifest["codec"]["factory"] == "given"


def test_cli_builds_and_reports_bad_settings(source, tmp_path, caplog):
    folder, _ = source
    out = tmp_path / "cli"
    assert (
        index_main(["compress", "--input", str(folder), "--output", str(out), "--nlist", "8", "--engine", "codec"]) == 0
    )
    assert verify_output(out, "multi-compressed")["code_size"] == 48 + 1  # default dimension: min(384, H)
    status = index_main(
        ["compress", "--input", str(folder), "--output", str(tmp_path / "bad"), "--engine", "codec", "--code", "PQ5"]
    )
    assert status == 1
    assert "do not divide the projected dimension" in caplog.text
    assert not (tmp_path / "bad").exists()
    assert index_main(["compress", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "x")]) == 1


def test_sampled_and_streamed_rows_equal_the_memory_map(source):
    folder, _ = source
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    sample = sample_rows(vectors, 100, seed=3)
    rows = np.sort(np.random.default_rng(3).choice(len(vectors), size=100, replace=False))
    np.testing.assert_array_equal(sample, np.asarray(vectors[rows], dtype=np.float32))
    np.testing.assert_array_equal(read_rows(vectors, 17, 250), vectors[17:250])


def test_recall_is_measured_at_build_time_against_exact_maxsim(source, tmp_path, caplog):
    from pyserini_diffretriever.search.multivector import MultiVectorSearcher

    folder, docs = source
    manifest = compress_multivector(folder, tmp_path / "c", **OPTIONS, estimate_queries=12, min_recall=1.0)
    estimate = manifest["recall_estimate"]
    assert estimate["depth"] == 100 and estimate["queries"] == 12 and estimate["documents"] == len(docs)
    assert [row["rerank"] for row in estimate["settings"]] == [0, compress_multi.ESTIMATE_RERANK]
    # independently: the same pseudo-queries, brute-force MaxSim over the float16 documents, the default search
    queries = compress_multi._pseudo_queries(MultiVectorFolder(folder), 12, 0)
    floats = [d.astype(np.float16).astype(np.float32) for d in docs]
    searcher = MultiVectorSearcher(tmp_path / "c")
    recalls = []
    for query in queries:
        exact = np.array([np.maximum(query @ d.T, 0).max(axis=1).sum() for d in floats])
        truth = set(np.argsort(-exact, kind="stable")[:100].tolist())
        found = {int(hit.docid[1:]) for hit in searcher.search(query, k=100)}
        recalls.append(len(truth & found) / 100)
    assert estimate["default"]["recall"] == pytest.approx(np.mean(recalls), abs=0.02)
    assert estimate["default"]["recall"] < 1.0 and "below --min-recall 1.00" in caplog.text
    assert compress_multivector(folder, tmp_path / "none", **OPTIONS, estimate_queries=0).get("recall_estimate") is None

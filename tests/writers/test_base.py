"""Writer checkpoints: after checkpoint(), more writes, and a crash, open(state) truncates every file to its
committed length, deletes files created later, and the finished folder equals an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.corpus import SkippedRecord
from pyserini_diffretriever.writers import (
    CheckpointStateError,
    FaissFlatWriter,
    JsonVectorWriter,
    MultiVectorWriter,
    WriterError,
    verify_output,
)


def _batches():
    rng = np.random.default_rng(3)
    for b in range(6):
        ids = [f"d{b}-{i}" for i in range(3)]
        multi = [rng.standard_normal((1 + (b + i) % 3, 4)).astype(np.float32) for i in range(3)]
        impact = [{f"t{b}": 0} if (b, i) in ((1, 2), (5, 0)) else {f"t{b}": 1 + i, f"u{i}": 5} for i in range(3)]
        yield ids, {"dense": np.stack([m.mean(0) for m in multi]), "multi": multi, "impact": impact}


WRITERS = {
    "dense": lambda d: FaissFlatWriter(d, {"k": 1}),
    "multi": lambda d: MultiVectorWriter(d, {"k": 1}, dtype="float16"),
    "impact": lambda d: JsonVectorWriter(d, {"k": 1}, strict=False, records_per_file=4),
}


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(WRITERS))
def test_resume_from_a_checkpoint_equals_an_uninterrupted_write(tmp_path, name, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    skipped = SkippedRecord("c.jsonl", 9, "invalid-json", "invalid JSON")
    with WRITERS[name](tmp_path / "whole") as writer:
        for b, (ids, vectors) in enumerate(_batches()):
            writer.write({"id": ids, "vector": vectors[name]})
            if b == 2:
                writer.record_skipped(skipped)

    writer = WRITERS[name](tmp_path / "resumed").open()
    for b, (ids, vectors) in enumerate(_batches()):
        writer.write({"id": ids, "vector": vectors[name]})
        if b == 2:
            writer.record_skipped(skipped)
        if b == 3:
            state = json.loads(json.dumps(writer.checkpoint()))
        if b == 4:  # written after the checkpoint, then the process "dies"
            writer.record_skipped(skipped)
            break
    writer.abort()
    (tmp_path / "resumed" / "stray.tmp").write_text("left by the crash")
    writer = WRITERS[name](tmp_path / "resumed").open(state)
    for b, (ids, vectors) in enumerate(_batches()):
        if b > 3:
            writer.write({"id": ids, "vector": vectors[name]})
    writer.finish()
    writer.cleanup()
    assert _files(tmp_path / "resumed") == _files(tmp_path / "whole")
    manifest = verify_output(tmp_path / "resumed", deep=True)
    assert manifest["num_docs"] == (16 if name == "impact" else 18) and manifest["num_skipped_records"] == 1


def test_resumed_writer_still_refuses_committed_ids(tmp_path):
    writer = FaissFlatWriter(tmp_path / "d").open()
    writer.write({"id": ["a", "b"], "vector": np.ones((2, 3))})
    state = writer.checkpoint()
    writer.abort()
    writer = FaissFlatWriter(tmp_path / "d").open(state)
    with pytest.raises(WriterError, match="duplicate document id 'a'"):
        writer.write({"id": ["a"], "vector": np.ones((1, 3))})


def test_a_committed_file_that_shrank_is_damage(tmp_path):
    writer = MultiVectorWriter(tmp_path / "m").open()
    writer.write({"id": ["a"], "vector": [np.ones((2, 3), np.float32)]})
    state = writer.checkpoint()
    writer.abort()
    with open(tmp_path / "m" / "vectors.npy", "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(CheckpointStateError, match=r"vectors\.npy: 100 bytes, but the checkpoint committed 152"):
        MultiVectorWriter(tmp_path / "m").open(state)


def test_open_with_preserve_keeps_the_callers_files(tmp_path):
    writer = FaissFlatWriter(tmp_path / "d").open()
    writer.write({"id": ["a"], "vector": np.ones((1, 3))})
    state = writer.checkpoint()
    writer.abort()
    (tmp_path / "d" / "progress.json").write_text("{}")
    (tmp_path / "d" / "junk").write_text("x")
    FaissFlatWriter(tmp_path / "d").open(state, preserve=("progress.json",)).abort()
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["docid", "progress.json", "vectors.f32.tmp"]

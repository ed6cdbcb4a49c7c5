"""Manifest write/read round trip and the errors a reader gets for missing, corrupt or foreign manifests."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.writers.manifest import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_MANIFEST_NAME,
    ManifestError,
    build_manifest,
    read_manifest,
    write_manifest,
)


def test_round_trip_keeps_every_key(tmp_path):
    manifest = build_manifest(
        "impact-vectors",
        {"backbone": "tiny", "k": 4, "quantization": 100.0},
        3,
        quantization=100.0,
        shard=(1, 2),
        num_skipped_empty=0,
    )
    write_manifest(tmp_path, manifest)
    read = read_manifest(tmp_path, "impact-vectors")
    assert read == json.loads(json.dumps(manifest))
    assert read["format"] == FORMAT and read["format_version"] == FORMAT_VERSION
    assert read["quantization"] == 100 and isinstance(read["quantization"], int)
    assert read["shard"] == {"id": 1, "num": 2}
    assert set(read["versions"]) == {"package", "pyserini", "torch", "transformers", "faiss"}
    assert read["versions"]["pyserini"] is not None
    assert read["created"].endswith("+00:00")


def test_index_manifest_name_is_found(tmp_path):
    write_manifest(tmp_path, build_manifest("impact-index", {}, 2, quantization=100), name=INDEX_MANIFEST_NAME)
    assert read_manifest(tmp_path)["kind"] == "impact-index"


def test_missing_manifest_mentions_unfinished_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ManifestError, match="no manifest.json.*did that run finish"):
        read_manifest(out)
    (tmp_path / "out.partial-123-abc").mkdir()
    with pytest.raises(ManifestError, match="unfinished output out.partial-123-abc"):
        read_manifest(out)
    with pytest.raises(ManifestError, match="not a folder"):
        read_manifest(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "corrupt manifest"),
        (json.dumps({"format": "other"}), "not a pyserini-diffretriever manifest"),
        (
            json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "kind": "dense", "num_docs": 1}),
            "format_version 2 is not supported",
        ),
        (json.dumps({"format": FORMAT, "format_version": 1, "kind": "bogus", "num_docs": 1}), "unknown kind"),
        (json.dumps({"format": FORMAT, "format_version": 1, "kind": "dense"}), "num_docs missing"),
    ],
)
def test_bad_manifests_are_rejected(tmp_path, text, message):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(tmp_path)


def test_kind_check_and_write_validation(tmp_path):
    write_manifest(tmp_path, build_manifest("dense", {}, 1, dimension=8))
    with pytest.raises(ManifestError, match="kind is 'dense', expected 'multi'"):
        read_manifest(tmp_path, "multi")
    assert read_manifest(tmp_path, ("multi", "dense"))["dimension"] == 8
    with pytest.raises(ManifestError, match="kind must be one of"):
        write_manifest(tmp_path, {"num_docs": 1})
    with pytest.raises(ManifestError, match="not JSON-serialisable"):
        write_manifest(tmp_path, {"kind": "dense", "num_docs": 1, "encoder": {"x": object()}})
    assert read_manifest(tmp_path)["dimension"] == 8  # the failed write left the old manifest intact


def test_source_date_epoch_fixes_the_creation_time(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert build_manifest("dense", {}, 1, dimension=2)["created"] == "2023-11-14T22:13:20+00:00"
    write_manifest(tmp_path, {"kind": "dense", "num_docs": 1})
    assert read_manifest(tmp_path)["created"] == "2023-11-14T22:13:20+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ManifestError, match="SOURCE_DATE_EPOCH='yesterday' is not a number of seconds"):
        build_manifest("dense", {}, 1)

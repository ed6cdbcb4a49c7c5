"""Index manifest reading (shared with the writers) and atomic writes of derived files."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.search.index_format import IndexFormatError, read_docids, read_manifest
from pyserini_diffretriever.writers import ManifestError

from .index_builders import write_manifest


def test_manifest_of_a_lucene_folder_and_default_encoder(tmp_path):
    write_manifest(tmp_path, "impact-index", encoder={}, name="diffretriever-manifest.json", num_docs=2)
    manifest = read_manifest(tmp_path)
    assert manifest["kind"] == "impact-index" and manifest["encoder"] == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"format": "other", "format_version": 1, "kind": "dense", "num_docs": 1}, "not a pyserini-diffretriever"),
        ({"format": "pyserini-diffretriever", "format_version": 9, "kind": "dense", "num_docs": 1}, "format_version"),
        ({"format": "pyserini-diffretriever", "format_version": 1, "kind": "colbert", "num_docs": 1}, "kind"),
        (
            {"format": "pyserini-diffretriever", "format_version": 1, "kind": "dense", "num_docs": 1, "encoder": "x"},
            "encoder",
        ),
    ],
)
def test_bad_manifests_are_format_errors_and_manifest_errors(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(json.dumps(content))
    with pytest.raises(IndexFormatError, match=message) as error:
        read_manifest(tmp_path)
    assert isinstance(error.value, ManifestError)


def test_docids_are_read_like_pyserini(tmp_path):
    (tmp_path / "docid").write_text("a\n b \r\nc\n")
    assert read_docids(tmp_path / "docid") == ["a", " b", "c"]

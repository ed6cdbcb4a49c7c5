"""Manifests and compatibility, end to end: folders written by the encode CLI with the tiny Dream checkpoint,
opened by ``search.factory.open_searcher`` with query encoders that do or do not match. Every mismatch the
factory is specified to detect is refused with an IndexMismatchError naming the key and both values; a FAISS
dimension mismatch is reported the same way.

Not refused, by the factory's design (reported to the lead): the query K and prompt may differ from the
documents' (the paper pairs K_q=4 with K_p=16, and the query prompt text differs from the passage prompt), and
the manifest records no query-side expectation to compare them with.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.search.factory import check_encoder_compatibility, open_searcher
from pyserini_diffretriever.search.index_format import IndexFormatError, IndexMismatchError
from pyserini_diffretriever.writers import FaissFlatWriter, read_manifest

from .harness import cranfield_like, encode_argv, write_corpus


@pytest.fixture(scope="module")
def dream(tiny_dream_dir):
    from pyserini_diffretriever.encoders import DiffRetrieverModel

    return DiffRetrieverModel(str(tiny_dream_dir))


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_dream_dir, dream):
    """dense + multi + impact folders of 8 documents, encoded by the CLI with tiny Dream."""
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder

    root = tmp_path_factory.mktemp("mismatch")
    corpus = write_corpus(root / "corpus.jsonl", cranfield_like(8))
    encoder = DiffRetrieverDocumentEncoder(dream, max_length=64, batch_size=4)
    original = encode_cli.load_encoder
    encode_cli.load_encoder = lambda args: encoder  # a module-scoped fixture cannot use monkeypatch
    try:
        argv = encode_argv(corpus, root / "out", encoder=str(tiny_dream_dir), batch_size=4, checkpoint_every=1000,
                           extra_encoder=["--max-length", "64", "--device", "cpu"])
        assert encode_cli.main(argv) == 0
    finally:
        encode_cli.load_encoder = original
    return root / "out"


def query_encoder(model, **options):
    from pyserini_diffretriever.encoders import DiffRetrieverQueryEncoder

    return DiffRetrieverQueryEncoder(model, **{"representation": "dense", "max_length": 64, **options})


def edited_copy(index, tmp_path, name, **encoder_changes):
    """A copy of ``index/name`` whose manifest records other document-encoder settings."""
    folder = tmp_path / name
    shutil.copytree(index / name, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["encoder"].update(encoder_changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("name", ["dense", "multi"])
def test_matching_query_encoder_opens_and_searches(index, dream, name):
    encoder = query_encoder(dream, representation=name, k=2, prompt="one", dtype="float32", max_length=96)
    searcher = open_searcher(index / name, encoder)  # side-specific K, prompt and max_length may differ
    hits = searcher.search("shock wave boundary layer", k=3)
    assert len(hits) == 3 and all(h.docid.startswith("cran") for h in hits)


# (case, folder, manifest encoder changes, query encoder options, keys that must be named)
EDITED = [
    ("tokenizer", "dense", {"vocabulary_sha256": "0" * 64}, {}, ["vocabulary_sha256"]),
    ("tokenizer-size", "multi", {"tokenizer_size": 32000}, {"representation": "multi"}, ["tokenizer_size"]),
    ("backbone-path", "dense", {"backbone": "/models/other-dream"}, {}, ["backbone"]),
    ("revision", "dense", {"revision": "abc123"}, {}, ["revision"]),
    ("adapter", "multi", {"adapter": "/adapters/lora-msmarco"}, {"representation": "multi"}, ["adapter"]),
    ("mask-token", "dense", {"mask_token_id": 7}, {}, ["mask_token_id"]),
    ("logits-alignment", "dense", {"logits": "shifted"}, {}, ["logits"]),
    ("hidden-size", "dense", {"hidden_size": 128}, {}, ["hidden_size"]),
]


@pytest.mark.parametrize(("case", "name", "changes", "options", "keys"), EDITED, ids=[c[0] for c in EDITED])
def test_index_built_with_other_settings_is_refused(index, dream, tmp_path, case, name, changes, options, keys):
    folder = edited_copy(index, tmp_path, name, **changes)
    with pytest.raises(IndexMismatchError) as info:
        open_searcher(folder, query_encoder(dream, **options))
    assert set(keys) <= set(info.value.differences)
    for key in keys:
        assert f"{key}: index {changes[key]!r} vs query encoder" in str(info.value)
    assert str(folder) in str(info.value)


@pytest.mark.parametrize(("name", "representation"), [("dense", "multi"), ("multi", "dense"), ("dense", "impact")])
def test_query_representation_must_match_the_index(index, dream, name, representation):
    with pytest.raises(IndexMismatchError, match=rf"representation: index '{name}' vs query encoder "
                                                 rf"'{representation}'"):
        open_searcher(index / name, query_encoder(dream, representation=representation))


def test_other_backbone_is_refused(index, tiny_llada_dir):
    encoder = query_encoder(str(tiny_llada_dir))
    with pytest.raises(IndexMismatchError) as info:
        open_searcher(index / "dense", encoder)
    assert {"backbone", "model_type", "vocabulary_sha256"} <= set(info.value.differences)


def test_impact_quantisation_must_match(index, dream):
    manifest = read_manifest(index / "impact")
    same = query_encoder(dream, representation="impact").settings()
    check_encoder_compatibility(manifest["encoder"], same, "impact-index")
    other = query_encoder(dream, representation="impact", quantization=50).settings()
    with pytest.raises(IndexMismatchError, match=r"quantization: index 100\.0 vs query encoder 50\.0"):
        check_encoder_compatibility(manifest["encoder"], other, "impact-index", where=index / "impact")


def test_faiss_dimension_mismatch_is_reported_like_a_settings_mismatch(index, dream, tmp_path):
    settings = {k: v for k, v in read_manifest(index / "dense")["encoder"].items() if k != "hidden_size"}
    folder = tmp_path / "dense32"
    with FaissFlatWriter(folder, settings) as writer:
        writer.write({"id": ["a", "b"], "vector": np.ones((2, 32), np.float32)})
    with pytest.raises(IndexMismatchError, match=r"dimension 32 but the query encoder produces 64-dim") as info:
        open_searcher(folder, query_encoder(dream))
    assert info.value.differences == {"dimension": (32, 64)}


def test_faiss_file_disagreeing_with_its_manifest_is_a_format_error(index, dream, tmp_path):
    folder = tmp_path / "dense"
    shutil.copytree(index / "dense", folder)
    with FaissFlatWriter(tmp_path / "other", {}) as writer:
        writer.write({"id": [f"d{i}" for i in range(8)], "vector": np.ones((8, 32), np.float32)})
    shutil.copy(tmp_path / "other" / "index", folder / "index")  # a 32-dim index under a 64-dim manifest
    with pytest.raises((IndexFormatError, IndexMismatchError), match=r"dimension 32"):
        open_searcher(folder, query_encoder(dream))

"""open_searcher: the manifest picks the searcher and the query encoder; incompatible encoders are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyserini_diffretriever.search.factory import check_encoder_compatibility, open_searcher, query_encoder_for
from pyserini_diffretriever.search.index_format import IndexFormatError, IndexMismatchError
from pyserini_diffretriever.search.multivector import MultiVectorSearcher

from .index_builders import ENCODER_SETTINGS, FakeQueryEncoder, random_multi_docs, write_manifest, write_multi_index


@pytest.fixture()
def multi_folder(tmp_path):
    docs = random_multi_docs(20, 8, seed=2)
    return write_multi_index(tmp_path / "multi", docs, [f"d{i}" for i in range(20)]), docs


def test_side_specific_settings_may_differ():
    query = {
        **ENCODER_SETTINGS,
        "k": 4,
        "prompt": "one",
        "max_length": 64,
        "dtype": "bfloat16",
        "side": "query",
        "representation": "multi",
    }
    check_encoder_compatibility(ENCODER_SETTINGS, query, "multi")


def test_every_differing_key_is_listed_with_both_values():
    query = {**ENCODER_SETTINGS, "backbone": "other/model", "hidden_size": 16, "representation": "dense"}
    with pytest.raises(IndexMismatchError) as error:
        check_encoder_compatibility(ENCODER_SETTINGS, query, "multi", where="idx")
    assert error.value.differences == {
        "backbone": ("fake/backbone", "other/model"),
        "hidden_size": (8, 16),
        "representation": ("multi", "dense"),
    }
    assert "idx" in str(error.value) and "hidden_size: index 8 vs query encoder 16" in str(error.value)
    check_encoder_compatibility(ENCODER_SETTINGS, query, "multi", ignore=("backbone", "hidden_size", "representation"))


def test_quantisation_matters_for_impact_indexes_only():
    query = {**ENCODER_SETTINGS, "quantization": 256}
    check_encoder_compatibility(ENCODER_SETTINGS, query, "dense")
    with pytest.raises(IndexMismatchError, match="quantization"):
        check_encoder_compatibility(ENCODER_SETTINGS, {**query, "representation": "impact"}, "impact-index")


def test_keys_recorded_on_one_side_only_are_not_compared():
    check_encoder_compatibility({"backbone": "m"}, {"backbone": "m", "adapter": "lora", "hidden_size": 3}, "dense")


EXPECTED_QUERY = {"k": 4, "prompt": "few", "prompt_sha256": "a" * 64, "max_length": 512}


@pytest.mark.parametrize(
    ("changes", "differences"),
    [
        ({}, {}),
        ({"max_length": 64, "dtype": "bfloat16"}, {}),  # runtime settings are not compared
        ({"k": 2}, {"k": (4, 2)}),
        ({"prompt": "one", "prompt_sha256": "b" * 64}, {"prompt": ("few", "one")}),
        ({"prompt_sha256": "b" * 64}, {"prompt": ("few", "few")}),  # same name, same K, other text
        ({"k": 2, "prompt": "one", "prompt_sha256": "b" * 64}, {"k": (4, 2), "prompt": ("few", "one")}),
    ],
    ids=["same", "runtime", "k", "prompt", "prompt-text", "both"],
)
def test_query_k_and_prompt_are_compared_with_the_manifest_query_record(changes, differences):
    query = {**ENCODER_SETTINGS, **EXPECTED_QUERY, "side": "query", "representation": "multi", **changes}
    if not differences:
        check_encoder_compatibility(ENCODER_SETTINGS, query, "multi", query=EXPECTED_QUERY)
        return
    with pytest.raises(IndexMismatchError) as error:
        check_encoder_compatibility(ENCODER_SETTINGS, query, "multi", where="idx", query=EXPECTED_QUERY)
    assert error.value.differences == differences
    for key, (expected, actual) in differences.items():
        assert f"{key}: index expects queries with {expected!r} vs query encoder {actual!r}" in str(error.value)
    check_encoder_compatibility(ENCODER_SETTINGS, query, "multi", ignore=tuple(differences), query=EXPECTED_QUERY)
    check_encoder_compatibility(ENCODER_SETTINGS, query, "multi")  # no record (older manifest): not compared


def test_a_custom_prompt_is_matched_by_content(tmp_path):
    yaml_text = "system: s\nuser_prefix: 'Q: '\nuser_suffix: ' in one word.'\nassistant_prefix: 'Word: '\n"
    first, second, other = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    first.write_text(yaml_text)
    second.write_text(yaml_text)
    other.write_text(yaml_text.replace("one word", "a word"))
    from pyserini_diffretriever.representation.prompts import load_prompt

    expected = {"k": 4, "prompt": "sha256:" + load_prompt(first, "query").sha256(), "prompt_sha256": "a" * 64}
    query = {"k": 2, "prompt": str(second), "prompt_sha256": "b" * 64}  # other K: the adapted text differs
    check_encoder_compatibility({}, query, "dense", query=expected, ignore=("k",))
    with pytest.raises(IndexMismatchError) as error:
        check_encoder_compatibility({}, {**query, "prompt": str(other)}, "dense", query=expected, ignore=("k",))
    assert error.value.differences == {"prompt": (expected["prompt"], str(other))}


def test_unknown_ignored_keys_are_refused():
    with pytest.raises(ValueError, match=r"unknown settings \['backbon'\]"):
        check_encoder_compatibility(ENCODER_SETTINGS, ENCODER_SETTINGS, "dense", ignore=("backbon",))


def test_open_searcher_returns_a_multivector_searcher_with_the_given_encoder(multi_folder):
    folder, docs = multi_folder
    encoder = FakeQueryEncoder({"q": docs[4][:2]}, "multi")
    searcher = open_searcher(folder, encoder, mode="exact", threads=2)
    assert isinstance(searcher, MultiVectorSearcher) and searcher.mode == "exact" and searcher.threads == 2
    assert searcher.search("q", k=1)[0].docid == "d4"


def test_open_searcher_refuses_mismatched_encoders(multi_folder):
    folder, docs = multi_folder
    with pytest.raises(IndexMismatchError, match="vocabulary_sha256"):
        open_searcher(folder, FakeQueryEncoder({}, "multi", {"vocabulary_sha256": "other"}))
    with pytest.raises(IndexMismatchError, match="representation"):
        open_searcher(folder, FakeQueryEncoder({}, "impact"))

    class Unsettled:  # no settings(): only the dimension can be checked
        dimension = 5

        def encode(self, query):
            return np.ones((1, 5), dtype=np.float32)

    with pytest.raises(IndexMismatchError, match="dimension 8") as error:
        open_searcher(folder, Unsettled())
    assert error.value.differences == {"dimension": (8, 5)}


def test_unsearchable_or_foreign_folders_are_format_errors(tmp_path, multi_folder):
    write_manifest(tmp_path / "vectors", "impact-vectors", num_docs=3)
    with pytest.raises(IndexFormatError, match="pyserini_diffretriever.index lucene"):
        open_searcher(tmp_path / "vectors")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "docid").write_text("a\n")
    with pytest.raises(IndexFormatError, match="FaissSearcher"):
        open_searcher(plain)
    manifest = json.loads((multi_folder[0] / "manifest.json").read_text())
    (multi_folder[0] / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    with pytest.raises(IndexFormatError, match="format_version"):
        open_searcher(multi_folder[0], FakeQueryEncoder({}, "multi"))


def test_multi_options_are_refused_for_other_kinds(tmp_path):
    write_manifest(tmp_path / "impact", "impact-index", name="diffretriever-manifest.json", num_docs=1)
    with pytest.raises(TypeError, match="option mode does not apply to impact-index indexes.*multi, multi-compressed"):
        open_searcher(tmp_path / "impact", FakeQueryEncoder({}, "impact"), mode="exact")


@pytest.mark.jvm  # importing the encoders imports pyserini.encode, which starts the JVM
def test_query_encoder_is_rebuilt_from_the_manifest(tmp_path, tiny_dream_dir):
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder, DiffRetrieverQueryEncoder

    documents = DiffRetrieverDocumentEncoder(
        str(tiny_dream_dir), representation="multi", prompt="one", quantization=50, rounding="round"
    )
    texts = ["the wing stalls at high angle of attack", "heat transfer in laminar flow", "shock waves"]
    vectors = documents.encode(texts)
    folder = write_multi_index(tmp_path / "multi", vectors, ["w", "h", "s"], encoder=documents.settings())
    searcher = open_searcher(folder, query_slots=2)
    encoder = searcher.query_encoder
    assert isinstance(encoder, DiffRetrieverQueryEncoder)
    settings = encoder.settings()
    assert (settings["representation"], settings["k"], settings["prompt"]) == ("multi", 2, "one")
    assert (settings["quantization"], settings["rounding"]) == (50, "round")  # inherited from the documents
    hits = searcher.search("wing stall", k=3)
    assert sorted(h.docid for h in hits) == ["h", "s", "w"]
    shared = query_encoder_for(json.loads((folder / "manifest.json").read_text()), model=encoder.model)
    assert shared.model is encoder.model and shared.k == 4  # Dream's default query K
    moved = json.loads((folder / "manifest.json").read_text())
    moved["encoder"]["vocabulary_sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(moved))
    with pytest.raises(IndexMismatchError, match="vocabulary_sha256"):
        open_searcher(folder, model=encoder.model)

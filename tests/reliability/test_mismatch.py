"""Manifests and compatibility, end to end: folders written by the encode CLI with the tiny Dream checkpoint,
opened by ``search.factory.open_searcher`` with query encoders that do or do not match. Every mismatch the
factory is specified to detect is refused with an IndexMismatchError naming the key and both values; a FAISS
dimension mismatch is reported the same way.

The query K and prompt differ from the documents' by design (Dream: K_q=4, K_p=16), so they are compared with
the manifest's ``query`` record (what the index expects of its queries, written at encode time), not with the
document settings; the default query encoder takes them from that record.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pyserini_diffretriever.backbones import default_k
from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.cli import search as search_cli
from pyserini_diffretriever.representation.prompts import load_prompt
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
        argv = encode_argv(
            corpus,
            root / "out",
            encoder=str(tiny_dream_dir),
            batch_size=4,
            checkpoint_every=1000,
            extra_encoder=["--max-length", "64", "--device", "cpu"],
        )
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
    encoder = query_encoder(dream, representation=name, dtype="float32", max_length=96)
    searcher = open_searcher(index / name, encoder)  # the query max_length and dtype are not compared
    hits = searcher.search("shock wave boundary layer", k=3)
    assert len(hits) == 3 and all(h.docid.startswith("cran") for h in hits)


# --- the query K and prompt the index expects (manifest "query") ----------------------------------------------
def test_every_folder_records_the_query_settings_it_expects(index, dream):
    direct = query_encoder(dream, prompt="few").settings()  # what a default query encoder reports
    expected = {
        "k": default_k("Dream", "query"),
        "prompt": "few",
        "prompt_sha256": direct["prompt_sha256"],
        "max_length": 512,
    }
    assert expected["k"] == 4 != read_manifest(index / "dense")["encoder"]["k"]  # K_q differs from K_p
    for name in ("dense", "multi", "impact"):
        assert read_manifest(index / name)["query"] == expected


@pytest.mark.parametrize("name", ["dense", "multi"])
def test_default_query_encoder_follows_the_manifest_and_searches(index, dream, name):
    searcher = open_searcher(index / name, model=dream)
    settings = searcher.query_encoder.settings()
    assert (settings["k"], settings["prompt"]) == (4, "few")
    assert settings["max_length"] == read_manifest(index / name)["query"]["max_length"]
    assert len(searcher.search("shock wave boundary layer", k=3)) == 3


@pytest.mark.parametrize("how", ["encoder", "open_searcher-k"])
def test_other_query_k_is_refused_naming_k_and_both_values(index, dream, how):
    with pytest.raises(IndexMismatchError) as info:
        if how == "encoder":
            open_searcher(index / "dense", query_encoder(dream, k=2))
        else:
            open_searcher(index / "dense", model=dream, query_slots=2)
    assert info.value.differences == {"k": (4, 2)}
    assert "k: index expects queries with 4 vs query encoder 2" in str(info.value)
    assert "--ignore-mismatch k" in str(info.value) and str(index / "dense") in str(info.value)


def test_other_query_prompt_is_refused(index, dream):
    with pytest.raises(IndexMismatchError) as info:
        open_searcher(index / "multi", query_encoder(dream, representation="multi", prompt="three"))
    assert info.value.differences == {"prompt": ("few", "three")}
    assert "prompt: index expects queries with 'few' vs query encoder 'three'" in str(info.value)


def test_ignored_query_keys_are_accepted(index, dream):
    encoder = query_encoder(dream, representation="multi", k=2, prompt="one")
    with pytest.raises(IndexMismatchError) as info:
        open_searcher(index / "multi", encoder)
    assert set(info.value.differences) == {"k", "prompt"}
    searcher = open_searcher(index / "multi", encoder, ignore_mismatch=("k", "prompt"))
    assert len(searcher.search("shock wave boundary layer", k=3)) == 3
    with pytest.raises(ValueError, match=r"unknown settings \['kk'\]"):
        open_searcher(index / "multi", encoder, ignore_mismatch=("kk",))


def test_a_k_difference_is_not_also_reported_as_a_prompt_difference(dream):
    """The 'one' prompt's wording follows K ('four words'), so its K-adapted digest differs with K."""
    at_four, at_two = (query_encoder(dream, prompt="one", k=k).settings() for k in (4, 2))
    assert at_four["prompt_sha256"] != at_two["prompt_sha256"]
    expected = {key: at_four[key] for key in ("k", "prompt", "prompt_sha256", "max_length")}
    with pytest.raises(IndexMismatchError) as info:
        check_encoder_compatibility({}, at_two, "dense", query=expected)
    assert info.value.differences == {"k": (4, 2)}
    check_encoder_compatibility({}, at_two, "dense", query=expected, ignore=("k",))


def test_manifest_without_query_record_compares_no_query_settings(index, dream, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(index / "dense", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["query"]  # written before the record existed
    (folder / "manifest.json").write_text(json.dumps(manifest))
    open_searcher(folder, query_encoder(dream, k=2, prompt="one"))
    assert open_searcher(folder, model=dream).query_encoder.k == default_k("Dream", "query")


QUERY_YAML = """system: "You answer search queries."
user_prefix: 'Query: "'
user_suffix: '". Give one word that represents this query.'
assistant_prefix: 'The word is: "'
"""


@pytest.fixture(scope="module")
def yaml_index(tmp_path_factory, tiny_dream_dir, dream):
    """A multi folder whose queries are declared at encode time: a custom query prompt YAML and K_q = 3."""
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder

    root = tmp_path_factory.mktemp("yaml-query")
    (root / "query.yaml").write_text(QUERY_YAML)
    corpus = write_corpus(root / "corpus.jsonl", cranfield_like(6))
    encoder = DiffRetrieverDocumentEncoder(dream, max_length=64, batch_size=4)
    original = encode_cli.load_encoder
    encode_cli.load_encoder = lambda args: encoder
    try:
        argv = encode_argv(
            corpus,
            root / "out",
            encoder=str(tiny_dream_dir),
            representations=("multi",),
            batch_size=4,
            checkpoint_every=1000,
            extra_encoder=[
                "--max-length",
                "64",
                "--device",
                "cpu",
                "--query-prompt",
                str(root / "query.yaml"),
                "--query-k",
                "3",
                "--query-max-length",
                "48",
            ],
        )
        assert encode_cli.main(argv) == 0
    finally:
        encode_cli.load_encoder = original
    return root


def test_custom_query_prompt_is_recorded_by_content_and_found_again(yaml_index, dream, tmp_path):
    folder = yaml_index / "out"
    record = read_manifest(folder)["query"]
    content = load_prompt(yaml_index / "query.yaml", "query").sha256()
    assert record["prompt"] == f"sha256:{content}" and record["prompt_file"] == str(yaml_index / "query.yaml")
    assert (record["k"], record["max_length"]) == (3, 48)
    searcher = open_searcher(folder, model=dream)  # default: the YAML recorded at encode time
    settings = searcher.query_encoder.settings()
    assert (settings["k"], settings["prompt"]) == (3, str(yaml_index / "query.yaml"))
    copy = tmp_path / "moved.yaml"
    copy.write_text(QUERY_YAML)  # the same content elsewhere is the same prompt
    open_searcher(folder, query_encoder(dream, representation="multi", k=3, prompt=str(copy)))
    other = tmp_path / "other.yaml"
    other.write_text(QUERY_YAML.replace("search queries", "questions"))
    with pytest.raises(IndexMismatchError) as info:
        open_searcher(folder, query_encoder(dream, representation="multi", k=3, prompt=str(other)))
    assert info.value.differences == {"prompt": (f"sha256:{content}", str(other))}


def test_missing_custom_query_prompt_asks_for_it(yaml_index, dream, tmp_path):
    folder = tmp_path / "copied"
    shutil.copytree(yaml_index / "out", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["query"]["prompt_file"] = str(tmp_path / "gone.yaml")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        IndexFormatError,
        match=r"custom prompt YAML .*gone\.yaml, which is missing or has changed.*"
        r"--prompt PATH",
    ):
        open_searcher(folder, model=dream)


def test_search_cli_defaults_refuses_and_ignores(index, tmp_path, capsys):
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tshock wave boundary layer\n2\theat transfer\n")
    base = ["--index", str(index / "multi"), "--topics", str(topics), "--hits", "3", "--device", "cpu"]
    assert search_cli.main([*base, "--output", str(tmp_path / "default.trec")]) == 0
    assert (tmp_path / "default.trec").read_text().count("\n") == 6
    assert search_cli.main([*base, "--output", str(tmp_path / "k2.trec"), "--k", "2", "--prompt", "one"]) == 1
    err = capsys.readouterr().err
    assert "k: index expects queries with 4 vs query encoder 2" in err and "prompt: index expects" in err
    assert "Traceback" not in err and not (tmp_path / "k2.trec").exists()
    assert (
        search_cli.main(
            [
                *base,
                "--output",
                str(tmp_path / "k2.trec"),
                "--k",
                "2",
                "--prompt",
                "one",
                "--ignore-mismatch",
                "k",
                "prompt",
            ]
        )
        == 0
    )
    with pytest.raises(SystemExit) as usage:
        search_cli.main([*base, "--output", str(tmp_path / "x.trec"), "--ignore-mismatch", "kq"])
    assert usage.value.code == 2


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
    with pytest.raises(
        IndexMismatchError,
        match=rf"representation: index '{name}' vs query encoder "
        rf"'{representation}'",
    ):
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

"""The kinds table: every manifest kind has a row or a reason, options are checked against the row, a new row
is all a new kind needs, and open_searchers fuses by the rows' representations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pyserini_diffretriever.search import factory, kinds
from pyserini_diffretriever.search.factory import open_searcher, open_searchers
from pyserini_diffretriever.search.fusion import MinMaxHybridSearcher, fuse_min_max_hits
from pyserini_diffretriever.search.index_format import IndexFormatError
from pyserini_diffretriever.search.kinds import INDEX_KINDS, IndexKind, KindOptionError, check_options, index_kind
from pyserini_diffretriever.search.multivector import MultiVectorSearcher
from pyserini_diffretriever.writers import manifest as manifest_module
from pyserini_diffretriever.writers import verify
from pyserini_diffretriever.writers.manifest import KINDS as MANIFEST_KINDS

from .index_builders import FakeQueryEncoder, random_multi_docs, write_manifest, write_multi_index


def test_every_manifest_kind_has_a_row_or_says_why_it_is_not_searchable():
    for name in MANIFEST_KINDS:
        assert (name in INDEX_KINDS) != (name in kinds.NOT_SEARCHABLE), name
    with pytest.raises(IndexFormatError, match="pyserini_diffretriever.index lucene --input F"):
        index_kind("impact-vectors", "F")
    with pytest.raises(IndexFormatError, match="'bogus' is not searchable"):
        index_kind("bogus")


def test_rows_answer_representation_fusion_side_and_thread_safety():
    assert kinds.kinds_of("multi") == ("multi", "multi-compressed", "multi-warp")
    assert kinds.kinds_of("dense") == ("dense", "dense-ann", "dense-lucene-index")
    assert {name: row.fusion_side for name, row in INDEX_KINDS.items() if row.fusion_side == "sparse"} == {
        "impact-index": "sparse"
    }
    assert INDEX_KINDS["dense"].thread_safe and not INDEX_KINDS["multi-compressed"].thread_safe
    lucene = {name for name, row in INDEX_KINDS.items() if row.jvm}  # searched through pyjnius: one lock for all
    assert lucene == {"impact-index", "dense-lucene-index"}
    assert not any(INDEX_KINDS[name].thread_safe for name in lucene)


@pytest.mark.parametrize(
    ("kind", "option", "message"),
    [
        (
            "impact-index",
            "nprobe",
            "option nprobe does not apply to impact-index indexes.*nprobe applies to: dense-ann",
        ),
        (
            "multi",
            "rerank",
            "option rerank does not apply to multi indexes.*rerank applies to: multi-compressed, multi-warp",
        ),
        ("multi-compressed", "token_index", "token_index does not apply to multi-compressed"),
        ("dense", "mode", "dense accepts: no search options"),
    ],
)
def test_an_option_of_another_kind_is_refused_naming_both(kind, option, message):
    with pytest.raises(KindOptionError, match=message) as error:
        check_options({option: 1}, INDEX_KINDS[kind])
    assert (error.value.option, error.value.kinds) == (option, (kind,))
    assert isinstance(error.value, TypeError)


def test_an_ann_index_has_only_the_parameters_its_factory_has():
    hnsw = {"kind": "dense-ann", "search": {"efSearch": 256}}
    check_options({"ef_search": 64}, INDEX_KINDS["dense-ann"], hnsw)
    with pytest.raises(KindOptionError, match="this dense-ann index has no nprobe parameter"):
        check_options({"nprobe": 8}, INDEX_KINDS["dense-ann"], hnsw)
    flat_lucene = {"kind": "dense-lucene-index", "lucene": {"hnsw": False}}
    with pytest.raises(KindOptionError, match="no ef_search parameter"):
        check_options({"ef_search": 8}, INDEX_KINDS["dense-lucene-index"], flat_lucene)


@pytest.fixture()
def two_multi(tmp_path):
    docs = random_multi_docs(12, 8, seed=2)
    docids = [f"d{i}" for i in range(12)]
    return write_multi_index(tmp_path / "a", docs, docids), write_multi_index(tmp_path / "b", docs, docids), docs


@pytest.fixture()
def new_kinds(monkeypatch):
    """Manifests of kinds this test invents are readable and verifiable (the writer side of a new kind: its name
    in the manifest's KINDS and a folder check)."""
    monkeypatch.setattr(manifest_module, "KINDS", (*MANIFEST_KINDS, "multi-test", "sparse-test"))
    for name in ("multi-test", "sparse-test"):
        monkeypatch.setitem(verify._CHECKS, name, lambda folder, manifest, deep: None)


def test_a_new_kind_is_one_row(two_multi, tmp_path, new_kinds):
    opened = {}

    def opener(folder, manifest, query_encoder, options):
        opened.update(folder=folder, options=dict(options))
        return MultiVectorSearcher(two_multi[0], query_encoder, mode="exact")

    row = kinds.register_kind(IndexKind("multi-test", "multi", "dense", opener, frozenset({"probe"})))
    try:
        write_manifest(tmp_path / "new", "multi-test", num_docs=12)
        encoder = FakeQueryEncoder({"q": two_multi[2][5][:2]}, "multi")
        searcher = open_searcher(tmp_path / "new", encoder, probe=3)
        assert opened == {"folder": tmp_path / "new", "options": {"probe": 3}}
        assert searcher.search("q", k=1)[0].docid == "d5"
        assert "multi-test" in kinds.kinds_of("multi") and row is INDEX_KINDS["multi-test"]
        with pytest.raises(KindOptionError, match="option mode does not apply to multi-test"):
            open_searcher(tmp_path / "new", encoder, mode="exact")
    finally:
        del INDEX_KINDS["multi-test"]


def test_query_slots_is_the_new_name_of_k(two_multi):
    encoder = FakeQueryEncoder({}, "multi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_searcher(two_multi[0], encoder, query_slots=4)
    with pytest.warns(DeprecationWarning, match="query_slots"):
        open_searcher(two_multi[0], encoder, k=4)
    with pytest.raises(TypeError, match="query_slots only"):
        open_searcher(two_multi[0], encoder, k=4, query_slots=4)


@pytest.fixture()
def fake_encoders(monkeypatch, two_multi):
    docs = two_multi[2]
    table = {"q": docs[3][:2]}
    monkeypatch.setattr(
        factory,
        "query_encoder_for",
        lambda manifest, **kwargs: FakeQueryEncoder(table, INDEX_KINDS[manifest["kind"]].representation),
    )
    return table


def test_open_searchers_checks_declared_representations_and_refuses_two_of_one(two_multi, fake_encoders):
    first, second, _ = two_multi
    assert isinstance(open_searchers([("multi", first)]), MultiVectorSearcher)
    with pytest.raises(IndexFormatError, match="given as a dense index, but it holds a 'multi' index"):
        open_searchers([("dense", first)])
    with pytest.raises(IndexFormatError, match="both indexes are multi indexes"):
        open_searchers([first, second])
    with pytest.raises(ValueError, match="not 3"):
        open_searchers([first, second, first])


def test_open_searchers_gives_each_option_to_the_indexes_that_have_it(two_multi, fake_encoders, tmp_path):
    first, *_ = two_multi
    assert open_searchers([first], search_options={"mode": "exact", "nprobe": None}).mode == "exact"
    with pytest.raises(KindOptionError, match="option rerank does not apply to multi indexes"):
        open_searchers([first], search_options={"rerank": 10})
    dense = write_manifest(tmp_path / "dense", "dense", num_docs=12).parent
    with pytest.raises(KindOptionError, match=r"min_idf applies to none of the indexes: .*\(dense\), .*\(multi\)"):
        open_searchers([first, dense], search_options={"min_idf": 0.5})


def test_open_searchers_fuses_in_representation_order(two_multi, fake_encoders, tmp_path, new_kinds):
    """An impact-side stand-in (a registered sparse kind) fused with a multi index, whichever comes first."""
    first, _, docs = two_multi

    def opener(folder, manifest, query_encoder, options):
        return MultiVectorSearcher(first, query_encoder, mode="exact", candidates=options.get("sparse_knob"))

    kinds.register_kind(IndexKind("sparse-test", "impact", "sparse", opener, frozenset({"sparse_knob", "candidates"})))
    try:
        write_manifest(tmp_path / "sparse", "sparse-test", num_docs=12)
        prepared = []
        fused = open_searchers(
            [tmp_path / "sparse", first],
            alpha=0.7,
            depth=5,
            search_options={"sparse_knob": 7, "mode": "exact"},
            prepare=lambda searcher, kind, folder: prepared.append((kind.name, folder)) or searcher,
        )
        assert isinstance(fused, MinMaxHybridSearcher) and (fused.alpha, fused.depth) == (0.7, 5)
        assert prepared == [("multi", first), ("sparse-test", tmp_path / "sparse")]  # dense side first
        assert fused.sparse_searcher.candidates == 7 and fused.dense_searcher.candidates is None
        assert fused.dense_searcher.mode == "exact"  # mode: only the multi index has it
        expected = fuse_min_max_hits(
            fused.dense_searcher.search("q", 5), fused.sparse_searcher.search("q", 5), 0.7, 5, 3
        )
        assert fused.search("q", k=3) == expected
        assert np.isclose(fused.search("q", k=1)[0].score, 1.0)  # the same run on both sides: its best is 1
    finally:
        del INDEX_KINDS["sparse-test"]

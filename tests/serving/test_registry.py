"""Our index types in Pyserini's server registries, hybrid aliases, and aliases that cannot be opened."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.search.index_format import IndexFormatError
from pyserini_diffretriever.serving import INDEX_TYPES, ServingRuntime, read_hybrid_specs, register_index_types
from pyserini_diffretriever.serving.app import ServerSettings, open_backend

pytestmark = [pytest.mark.jvm]


def write_config(path, indexes, **extra):
    path.write_text(json.dumps({"indexes": indexes, **extra}))
    return path


def test_registered_types_pass_pyserinis_config_parser_and_unknown_ones_do_not(tmp_path):
    from pyserini.server.config import load_server_config
    from pyserini.server.utils import INDEX_TYPE, SEARCHER_FACTORIES

    register_index_types(ServingRuntime())
    assert set(INDEX_TYPES) <= set(INDEX_TYPE) and set(INDEX_TYPES) <= set(SEARCHER_FACTORIES)
    (tmp_path / "idx").mkdir()
    ok = write_config(tmp_path / "ok.yaml", {"a": {"path": "idx", "index_type": "diffretriever_multi"}})
    indexes, keys = load_server_config(str(ok))
    assert indexes["a"].index_type == "diffretriever_multi" and indexes["a"].path == str(tmp_path / "idx") and not keys
    bad = write_config(tmp_path / "bad.yaml", {"a": {"path": "idx", "index_type": "diffretriever_bogus"}})
    with pytest.raises(ValueError, match="unsupported index_type"):
        load_server_config(str(bad))
    _, prebuilt, _ = SEARCHER_FACTORIES["diffretriever_dense"]
    with pytest.raises(ValueError, match="no prebuilt indexes"):
        prebuilt("msmarco-v1-passage")


def test_hybrid_specs_resolve_paths_and_name_the_alias_in_errors(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    hybrid = {"index_type": "diffretriever_hybrid", "path": "a", "with": str(tmp_path / "b")}
    specs = read_hybrid_specs(write_config(tmp_path / "c.yaml", {"h": hybrid, "plain": {"path": "a"}}))
    assert list(specs) == ["h"]
    assert specs["h"].paths == (tmp_path / "a", tmp_path / "b") and specs["h"].fusion == "minmax"
    assert specs["h"].alpha == 0.5 and specs["h"].depth == 1000
    for change, message in (
        ({"with": None}, 'needs "with"'),
        ({"with": "missing"}, "missing path"),
        ({"fusion": "rrf"}, 'unknown "fusion"'),
        ({"alpha": 1.5}, "outside \\[0, 1\\]"),
        ({"alpha": "half"}, 'invalid "alpha"'),
        ({"depth": 0}, 'invalid "depth"'),
    ):
        entry = {**hybrid, **change}
        with pytest.raises(ValueError, match=f'"h".*{message}|{message}') as caught:
            read_hybrid_specs(write_config(tmp_path / "c.yaml", {"h": entry}))
        assert '"h"' in str(caught.value)


def test_an_alias_of_the_wrong_kind_stops_the_start_naming_alias_and_cause(cranfield_demo, tmp_path):
    enc = cranfield_demo.work / "enc"
    config = write_config(tmp_path / "s.yaml", {"m": {"path": str(enc / "dense"), "index_type": "diffretriever_multi"}})
    with pytest.raises(RuntimeError, match="cannot open index alias 'm'.*holds a 'dense' index"):
        open_backend(ServerSettings(config=str(config)))
    runtime = ServingRuntime(hybrids=read_hybrid_specs(config))
    with pytest.raises(IndexFormatError, match="needs 'with'"):
        runtime.open("diffretriever_hybrid", enc / "dense", alias="h")
    same = {"index_type": "diffretriever_hybrid", "path": str(enc / "dense"), "with": str(enc / "dense")}
    runtime = ServingRuntime(hybrids=read_hybrid_specs(write_config(tmp_path / "h.yaml", {"h": same})))
    with pytest.raises(IndexFormatError, match="both indexes are dense"):
        runtime.open("diffretriever_hybrid", enc / "dense", alias="h")


def test_lucene_searches_of_all_aliases_share_one_lock(cranfield_demo):
    """Concurrent Lucene impact searches through pyjnius got each other's query terms (the concurrent REST test's
    rankings differed from the CLI's), even on different searchers: every served search of a ``jvm`` kind, in any
    alias, holds the one JVM lock; FAISS searches run concurrently."""
    from pyserini_diffretriever.serving.searchers import JVM_LOCK, HybridSpec

    work = cranfield_demo.work
    runtime = ServingRuntime(hybrids={"h": HybridSpec((work / "enc" / "dense", work / "impact"), depth=20)})
    try:
        served = runtime.open("diffretriever_impact", work / "impact", alias="i")
        assert served.kinds == ("impact-index",) and served.searcher._lock is JVM_LOCK
        hybrid = runtime.open("diffretriever_hybrid", work / "enc" / "dense", alias="h")
        assert hybrid.kinds == ("dense", "impact-index") and hybrid.searcher.sparse_searcher._lock is JVM_LOCK
        assert type(hybrid.searcher.dense_searcher).__name__ != "_Locked"
        multi = runtime.open("diffretriever_multi", work / "enc" / "multi", alias="m")
        assert multi.searcher._lock is not JVM_LOCK  # not thread safe, but no pyjnius: a lock of its own
    finally:
        runtime.close()


@pytest.mark.parametrize("kind", ["multi-compressed", "multi-warp"])
def test_a_compressed_multi_folder_serves_alone_and_in_both_fusions(cranfield_demo, tmp_path, kind):
    """Every kind works wherever its representation fits: multi-compressed and multi-warp as a multi alias and in
    hybrids, with the search CLI's results; a kind that is not thread safe is searched behind a lock."""
    from pyserini_diffretriever.cli import search as search_cli
    from pyserini_diffretriever.indexing.compress_multi import compress_multivector
    from pyserini_diffretriever.indexing.compress_warp import compress_multivector_warp
    from pyserini_diffretriever.search.kinds import INDEX_KINDS
    from pyserini_diffretriever.serving.searchers import HybridSpec

    compressed = tmp_path / "multi-c"
    compress = compress_multivector if kind == "multi-compressed" else compress_multivector_warp
    compress(cranfield_demo.work / "enc" / "multi", compressed, nlist=4)
    impact = cranfield_demo.work / "impact"
    hybrids = {fusion: HybridSpec((impact, compressed), fusion=fusion, depth=20) for fusion in ("minmax", "pyserini")}
    runtime = ServingRuntime(hybrids=hybrids)
    try:
        served = runtime.open("diffretriever_multi", compressed, alias="m")
        assert served.kinds == (kind,)
        assert (type(served.searcher).__name__ == "_Locked") is not INDEX_KINDS[kind].thread_safe
        topics = tmp_path / "topics.tsv"
        topics.write_text("".join(f"{qid}\t{text}\n" for qid, text in cranfield_demo.topics.items()))
        for alias, index_args in {
            "m": ["--index", str(compressed)],
            **{f: ["--multi-index", str(compressed), "--impact-index", str(impact), "--fusion", f] for f in hybrids},
        }.items():
            searcher = served if alias == "m" else runtime.open("diffretriever_hybrid", impact, alias=alias)
            run = tmp_path / f"{alias}.trec"
            argv = [*index_args, "--depth", "20", "--topics", str(topics), "--output", str(run), "--hits", "10"]
            assert search_cli.main(argv) == 0
            expected: dict[str, list[str]] = {}
            for line in run.read_text().splitlines():
                expected.setdefault(line.split()[0], []).append(line.split()[2])
            for qid, text in cranfield_demo.topics.items():
                hits = sorted(searcher.search(text, 10), key=lambda h: (-round(h.score, 6), h.docid))
                assert [h.docid for h in hits] == expected.get(qid, []), (alias, qid)
    finally:
        runtime.close()

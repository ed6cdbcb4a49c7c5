"""Lucene impact indexes from impact-vectors folders: Pyserini's indexer, verified counts, searchable scores."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.indexing import ImpactIndexError, build_impact_index, pyserini_index_args
from pyserini_diffretriever.writers import JsonVectorWriter, ManifestError, read_manifest

pytestmark = [pytest.mark.jvm]

DOCS = {
    "d1": {"wing": 30, "flow": 5, "the": 1},
    "d2": {"flow": 40, "heat": 7, "the": 1},
    "d3": {"heat": 50, "shock": 9, "the": 1},
    "d4": {"Ġshock": 3, "mach": 12, "the": 1},
}


def _impact_folder(path, docs=DOCS, records_per_file=3):
    with JsonVectorWriter(path, {"backbone": "fake", "quantization": 100}, records_per_file=records_per_file) as w:
        w.write({"id": list(docs), "vector": list(docs.values())})
    return path


def test_index_is_searchable_with_integer_dot_product_scores(tmp_path):
    from pyserini.search.lucene import LuceneImpactSearcher

    manifest = build_impact_index(_impact_folder(tmp_path / "impact"), tmp_path / "idx", threads=2)
    assert manifest["kind"] == "impact-index" and manifest["num_docs"] == manifest["indexed_docs"] == 4
    assert manifest["encoder"] == {"backbone": "fake", "quantization": 100}
    assert manifest["lucene"]["args"][:2] == ["--collection", "JsonVectorCollection"]
    assert read_manifest(tmp_path / "idx", "impact-index")["quantization"] == 100
    assert (tmp_path / "idx" / "diffretriever-manifest.json").is_file()
    assert not list(tmp_path.glob("idx.partial-*"))

    queries = {"q1": {"flow": 2, "wing": 1}, "q2": {"heat": 3, "Ġshock": 2, "shock": 1}, "q3": {"mach": 1}}

    class FixedQueryEncoder:
        def encode(self, text):
            return queries[text]

    searcher = LuceneImpactSearcher(str(tmp_path / "idx"), FixedQueryEncoder())
    for qid, query in queries.items():
        expected = {d: sum(w * vec.get(t, 0) for t, w in query.items()) for d, vec in DOCS.items()}
        expected = sorted(((d, s) for d, s in expected.items() if s > 0), key=lambda x: (-x[1], x[0]))
        hits = [(h.docid, h.score) for h in searcher.search(qid, k=10)]
        assert hits == [(d, float(s)) for d, s in expected], qid


def test_index_carries_the_skipped_record_list_of_its_input(tmp_path):
    from pyserini_diffretriever.writers.verify import verify_output

    folder = _impact_folder(tmp_path / "impact")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["num_skipped_records"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    skipped = json.dumps({"file": "c.jsonl", "line": 7, "id": "d9", "kind": "empty-text", "problem": "empty text"})
    (folder / "skipped-records.jsonl").write_text(skipped + "\n")

    build_impact_index(folder, tmp_path / "idx")
    assert (tmp_path / "idx" / "skipped-records.jsonl").read_text() == skipped + "\n"
    verify_output(tmp_path / "idx", "impact-index")  # counts agree: the search side opens it


def test_count_mismatch_names_the_skipped_record_and_leaves_no_index(tmp_path):
    folder = _impact_folder(tmp_path / "impact")
    # a hand-edited part file with a record Anserini silently skips (all weights truncate to 0)
    (folder / "vectors" / "part-00009.jsonl").write_text(
        json.dumps({"id": "bad", "contents": "", "vector": {"wing": 0.4}}) + "\n"
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["num_docs"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImpactIndexError, match=r"indexed 4 documents but .* holds 5.*document 'bad': weight 0.4"):
        build_impact_index(folder, tmp_path / "idx")
    assert not (tmp_path / "idx").exists() and not list(tmp_path.glob("idx.partial-*"))


def test_input_checks(tmp_path):
    folder = _impact_folder(tmp_path / "impact")
    with pytest.raises(ManifestError, match="pass the folder that contains vectors/"):
        build_impact_index(folder / "vectors", tmp_path / "idx")
    (folder / "vectors" / "notes.txt").write_text("x")
    with pytest.raises(ImpactIndexError, match=r"remove non-.jsonl entries \['notes.txt'\]"):
        build_impact_index(folder, tmp_path / "idx")
    (tmp_path / "other").mkdir()
    with pytest.raises(ManifestError, match="no manifest.json"):
        build_impact_index(tmp_path / "other", tmp_path / "idx")


def test_documented_pyserini_arguments(tmp_path):
    assert pyserini_index_args("V", "I", threads=3) == [
        "--collection",
        "JsonVectorCollection",
        "--input",
        "V",
        "--index",
        "I",
        "--generator",
        "DefaultLuceneDocumentGenerator",
        "--threads",
        "3",
        "--impact",
        "--pretokenized",
    ]

"""Truncated, corrupted and inconsistent output folders are detected with an error naming the folder, the file
and the problem, wherever a folder is opened: verify_output, MultiVectorFolder, merge, Lucene indexing, and the
searchers (open_searcher and the search CLI check a folder before FAISS or numpy read it)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.cli import index as index_cli
from pyserini_diffretriever.cli import search as search_cli
from pyserini_diffretriever.search import open_searcher
from pyserini_diffretriever.search.index_format import IndexFormatError
from pyserini_diffretriever.writers import (
    CorruptOutputError,
    ManifestError,
    MultiVectorFolder,
    verify_output,
)

from .harness import FakeEncoder, cranfield_like, encode_argv, write_corpus

DOCS = 10


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Pristine dense / multi / impact folders (lenient mode, one bad record skipped) and two dense shards."""
    root = tmp_path_factory.mktemp("outputs")
    lines = [*cranfield_like(DOCS)]
    lines.insert(5, '{"_id": "bad"')
    corpus = write_corpus(root / "corpus.jsonl", lines)
    original = encode_cli.load_encoder
    encode_cli.load_encoder = lambda args: FakeEncoder()  # a module-scoped fixture cannot use monkeypatch
    try:
        argv = encode_argv(corpus, root / "pristine", checkpoint_every=1000, extra_input=["--on-error", "skip"])
        assert encode_cli.main(argv) == 0
        for shard in range(2):
            argv = encode_argv(
                corpus,
                root / f"shard{shard}",
                representations=("dense",),
                checkpoint_every=1000,
                extra_input=["--on-error", "skip", "--shard-id", str(shard), "--shard-num", "2"],
            )
            assert encode_cli.main(argv) == 0
    finally:
        encode_cli.load_encoder = original
    return root


def _copy(folders, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(folders / "pristine" / name, target)
    return target


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])


def _manifest_edit(folder, **changes):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


DAMAGE = {
    "dense": [
        (
            "index-cut-end",
            lambda f: _truncate(f / "index", -10),
            CorruptOutputError,
            r"index is \d+ bytes, expected \d+ for 10 vectors of dimension 8 \(truncated or corrupt\)",
        ),
        (
            "index-cut-header",
            lambda f: _truncate(f / "index", 20),
            CorruptOutputError,
            r"index is truncated \(20 bytes, shorter than a FAISS header\)",
        ),
        (
            "index-garbage",
            lambda f: (f / "index").write_bytes(b"\x00garbage" * 10),
            CorruptOutputError,
            r"index is not a readable FAISS index",
        ),
        ("docid-missing", lambda f: (f / "docid").unlink(), CorruptOutputError, r"docid is missing"),
        (
            "docid-extra-line",
            lambda f: (f / "docid").write_text((f / "docid").read_text() + "ghost\n"),
            CorruptOutputError,
            r"docid lists 11 ids but the manifest says num_docs=10",
        ),
        ("docid-cut", lambda f: _truncate(f / "docid", -2), CorruptOutputError, r"docid does not end with a newline"),
        ("manifest-missing", lambda f: (f / "manifest.json").unlink(), ManifestError, r"no manifest\.json"),
        (
            "manifest-not-json",
            lambda f: (f / "manifest.json").write_text('{"format": "pyserini-diff'),
            ManifestError,
            r"corrupt manifest",
        ),
        (
            "manifest-not-utf8",
            lambda f: (f / "manifest.json").write_bytes(b"\xff\xfe{}"),
            ManifestError,
            r"corrupt manifest",
        ),
        (
            "manifest-num-docs",
            lambda f: _manifest_edit(f, num_docs=11),
            CorruptOutputError,
            r"index holds 10 vectors, the manifest says num_docs=11",
        ),
        (
            "manifest-dimension",
            lambda f: _manifest_edit(f, dimension=16),
            CorruptOutputError,
            r"index has dimension 8, the manifest says 16",
        ),
        (
            "leftover-temp",
            lambda f: (f / "vectors.f32.tmp").write_bytes(b"x"),
            CorruptOutputError,
            r"temporary files \['vectors\.f32\.tmp'\] are still there",
        ),
        (
            "skip-report-cut",
            lambda f: _truncate(f / "skipped-records.jsonl", 0),
            CorruptOutputError,
            r"skipped-records\.jsonl lists 0 records, the manifest says num_skipped_records=1",
        ),
    ],
    "multi": [
        (
            "vectors-cut",
            lambda f: _truncate(f / "vectors.npy", -4),
            CorruptOutputError,
            r"vectors\.npy is \d+ bytes, expected \d+ for shape \[\d+, 8\] \(truncated or corrupt\)",
        ),
        (
            "vectors-header-zeroed",
            lambda f: (f / "vectors.npy").write_bytes(b"\0" * 128 + (f / "vectors.npy").read_bytes()[128:]),
            CorruptOutputError,
            r"vectors\.npy: not a \.npy file",
        ),
        ("vectors-empty", lambda f: _truncate(f / "vectors.npy", 0), CorruptOutputError, r"vectors\.npy: not a \.npy"),
        ("offsets-missing", lambda f: (f / "offsets.npy").unlink(), CorruptOutputError, r"offsets\.npy is missing"),
        (
            "offsets-cut",
            lambda f: _truncate(f / "offsets.npy", -8),
            CorruptOutputError,
            r"offsets\.npy is not readable",
        ),
        (
            "offsets-wrong-length",
            lambda f: np.save(f / "offsets.npy", np.arange(5, dtype=np.int64)),
            CorruptOutputError,
            r"offsets\.npy is int64 \[5\], expected int64 \[11\]",
        ),
        (
            "offsets-wrong-end",
            lambda f: np.save(f / "offsets.npy", np.arange(11, dtype=np.int64)),
            CorruptOutputError,
            r"offsets\.npy must increase from 0 to \d+",
        ),
        (
            "manifest-dtype",
            lambda f: _manifest_edit(f, dtype="float16"),
            CorruptOutputError,
            r"vectors\.npy holds float32, the manifest says float16",
        ),
        (
            "manifest-num-vectors",
            lambda f: _manifest_edit(f, num_vectors=3),
            CorruptOutputError,
            r"vectors\.npy has shape \[\d+, 8\], the manifest says \[3, 8\]",
        ),
        (
            "docid-missing-line",
            lambda f: (f / "docid").write_text("\n".join((f / "docid").read_text().split()[1:]) + "\n"),
            CorruptOutputError,
            r"docid lists 9 ids but the manifest says num_docs=10",
        ),
    ],
    "impact": [
        (
            "part-cut-mid-line",
            lambda f: _truncate(f / "vectors" / "part-00001.jsonl", -5),
            CorruptOutputError,
            r"vectors/part-00001\.jsonl does not end with a newline \(truncated\)",
        ),
        (
            "part-missing",
            lambda f: (f / "vectors" / "part-00001.jsonl").unlink(),
            CorruptOutputError,
            r"vectors/ holds 7 records, the manifest says num_docs=10",
        ),
        (
            "stray-file",
            lambda f: (f / "vectors" / "notes.txt").write_text("x"),
            CorruptOutputError,
            r"vectors/ holds non-\.jsonl entries \['notes\.txt'\]",
        ),
        ("vectors-dir-missing", lambda f: shutil.rmtree(f / "vectors"), CorruptOutputError, r"vectors/ is missing"),
        ("manifest-kind", lambda f: _manifest_edit(f, kind="bogus"), ManifestError, r"unknown kind 'bogus'"),
    ],
}
CASES = [(rep, *case) for rep, cases in DAMAGE.items() for case in cases]


def test_pristine_folders_verify(folders):
    for name in ("dense", "multi", "impact"):
        manifest = verify_output(folders / "pristine" / name, deep=True)
        assert manifest["num_docs"] == DOCS and manifest["num_skipped_records"] == 1


@pytest.mark.parametrize(("rep", "case", "damage", "error", "message"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_damage_is_detected_with_folder_file_and_problem(folders, tmp_path, rep, case, damage, error, message):
    folder = _copy(folders, tmp_path, rep)
    damage(folder)
    with pytest.raises(error, match=message) as info:
        verify_output(folder)
    assert str(folder) in str(info.value)


@pytest.mark.parametrize("case", ["vectors-cut", "offsets-wrong-length", "vectors-header-zeroed"])
def test_multivector_folder_refuses_damage_before_memory_mapping(folders, tmp_path, case):
    folder = _copy(folders, tmp_path, "multi")
    _, damage, error, message = next(c for c in DAMAGE["multi"] if c[0] == case)
    damage(folder)
    with pytest.raises(error, match=message):
        MultiVectorFolder(folder)


def test_impact_deep_check_finds_duplicate_ids_and_postings(folders, tmp_path):
    folder = _copy(folders, tmp_path, "impact")
    part = folder / "vectors" / "part-00001.jsonl"
    first = (folder / "vectors" / "part-00000.jsonl").read_text().splitlines()[0]
    lines = part.read_text().splitlines()
    part.write_text("\n".join([first, *lines[1:]]) + "\n")  # same count, an id twice
    verify_output(folder)  # sizes and counts agree ...
    with pytest.raises(CorruptOutputError, match=r"document id 'cran1' appears twice"):
        verify_output(folder, deep=True)  # ... the deep check reads the records


def test_merge_refuses_a_damaged_shard(folders, tmp_path, caplog):
    shard1 = tmp_path / "shard1"
    shutil.copytree(folders / "shard1", shard1)
    _truncate(shard1 / "index", -8)
    status = index_cli.main(
        ["merge", "--inputs", str(folders / "shard0"), str(shard1), "--output", str(tmp_path / "merged")]
    )
    assert status == 1
    assert re.search(rf"{re.escape(str(shard1))}: index is \d+ bytes, expected", caplog.text)
    assert not (tmp_path / "merged").exists()


def test_merge_carries_the_skip_reports(folders, tmp_path):
    assert (
        index_cli.main(
            [
                "merge",
                "--inputs",
                str(folders / "shard0"),
                str(folders / "shard1"),
                "--output",
                str(tmp_path / "merged"),
            ]
        )
        == 0
    )
    merged = verify_output(tmp_path / "merged")
    assert merged["num_docs"] == DOCS and merged["num_skipped_records"] == 1
    assert (tmp_path / "merged" / "skipped-records.jsonl").read_text() == (
        folders / "pristine" / "dense" / "skipped-records.jsonl"
    ).read_text()


def test_lucene_indexing_refuses_a_truncated_impact_folder(folders, tmp_path, caplog):
    folder = _copy(folders, tmp_path, "impact")
    _truncate(folder / "vectors" / "part-00000.jsonl", -3)
    assert index_cli.main(["lucene", "--input", str(folder), "--index", str(tmp_path / "idx")]) == 1
    assert "part-00000.jsonl does not end with a newline (truncated)" in caplog.text
    assert not (tmp_path / "idx").exists()


SEARCH_DAMAGE = [
    (
        "dense",
        "index-cut-end",
        lambda f: _truncate(f / "index", -10),
        r"index is \d+ bytes, expected \d+ for 10 vectors of dimension 8 \(truncated or corrupt\)",
    ),
    ("dense", "index-cut-header", lambda f: _truncate(f / "index", 20), r"index is truncated \(20 bytes"),
    ("multi", "vectors-cut", lambda f: _truncate(f / "vectors.npy", -4), r"vectors\.npy is \d+ bytes, expected"),
]


@pytest.mark.parametrize(("rep", "case", "damage", "message"), SEARCH_DAMAGE, ids=[c[1] for c in SEARCH_DAMAGE])
def test_searching_a_damaged_folder_names_folder_and_file(folders, tmp_path, capsys, rep, case, damage, message):
    folder = _copy(folders, tmp_path, rep)
    damage(folder)
    with pytest.raises(IndexFormatError, match=message) as info:
        open_searcher(folder)  # refused before a query encoder is built or FAISS reads the file
    assert str(info.value).startswith(f"{folder}: ")
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tshock waves\n")
    capsys.readouterr()
    status = search_cli.main(["--index", str(folder), "--topics", str(topics), "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err and not (tmp_path / "run").exists()
    assert err.count("\n") == 1 and err.startswith(f"{search_cli.PROGRAM}: error: {folder}: ")
    assert re.search(message, err), err

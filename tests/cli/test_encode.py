"""``python -m pyserini_diffretriever.encode``: layouts per representation, one pass for several, shards +
merge == unsharded, precise bad-input errors, and all-or-nothing output (exceptions and SIGKILL)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.cli import index as index_cli
from pyserini_diffretriever.corpus import JsonlCorpusReader
from pyserini_diffretriever.writers import (
    MultiVectorFolder,
    iter_vector_records,
    read_faiss_docids,
    read_manifest,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

TOPICS = [
    ("Boundary layer transition", "experimental study of transition in the boundary layer of a flat plate"),
    ("Supersonic wing lift", "lift and drag of thin wings at supersonic speeds"),
    ("Heat transfer in hypersonic flow", "heat transfer to a blunt body in hypersonic flow"),
    ("Shock wave interaction", "interaction of a shock wave with a laminar boundary layer"),
    ("Buckling of cylinders", "buckling of thin cylindrical shells under axial compression"),
]


def cranfield_like(n: int = 20) -> list[dict]:
    """``n`` small aeronautics abstracts in BEIR layout (``_id``, ``title``, ``text``)."""
    docs = []
    for i in range(n):
        title, text = TOPICS[i % len(TOPICS)]
        docs.append(
            {
                "_id": f"cran{i + 1}",
                "title": f"{title} {i // len(TOPICS) + 1}",
                "text": f"{text}; case {i} with mach number {i % 7 + 1}.",
            }
        )
    return docs


def write_corpus(path: Path, docs: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs), encoding="utf-8")
    return path


@dataclass
class FakeBatch:
    dense: np.ndarray
    multi: list = field(default_factory=list)
    impact: list = field(default_factory=list)


class FakeEncoder:
    """Same shape as DiffRetrieverDocumentEncoder; each text's output depends on that text only (so batch and
    shard boundaries cannot change it). Impacts are word counts * 10; ``fail_after`` raises in that call."""

    def __init__(self, dim: int = 8, fail_after: int | None = None, delay: float = 0.0) -> None:
        self.dim, self.fail_after, self.delay = dim, fail_after, delay
        self.calls: list[int] = []

    def settings(self) -> dict:
        return {"backbone": "fake", "representation": "dense", "k": 3, "quantization": 100.0, "hidden_size": self.dim}

    def _one(self, text: str):
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        multi = rng.standard_normal((1 + zlib.crc32(text.encode()) % 3, self.dim)).astype(np.float32)
        words = [w.strip(".;,").lower() for w in text.split()]
        impact = {w: 10 * words.count(w) for w in words if w}
        return multi.mean(axis=0), multi, impact

    def encode_all(self, texts, titles=None, max_length=None, fp16=False):
        self.calls.append(len(texts))
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            raise RuntimeError("encoder exploded")
        time.sleep(self.delay)
        joined = [f"{t}. {x}" if t else x for t, x in zip(titles or [None] * len(texts), texts)]
        outs = [self._one(text) for text in joined]
        return FakeBatch(np.stack([o[0] for o in outs]), [o[1] for o in outs], [o[2] for o in outs])


def run_main(monkeypatch, argv, encoder=None) -> int:
    encoder = encoder or FakeEncoder()
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: encoder)
    return encode_cli.main([str(a) for a in argv])


def argv_for(corpus, out, *reps, extra_input=(), extra_encoder=(), extra_output=()):
    return [
        "input",
        "--corpus",
        corpus,
        "--fields",
        "title",
        "text",
        *extra_input,
        "encoder",
        "--encoder",
        "fake",
        "--representation",
        *reps,
        "--batch-size",
        "3",
        *extra_encoder,
        "output",
        "--embeddings",
        out,
        "--no-progress",
        *extra_output,
    ]


def load_folder(folder: Path) -> dict:
    """Everything a folder holds, as comparable Python objects."""
    manifest = read_manifest(folder)
    if manifest["kind"] == "dense":
        import faiss

        index = faiss.read_index(str(folder / "index"))
        return {"ids": read_faiss_docids(folder), "vectors": index.reconstruct_n(0, index.ntotal)}
    if manifest["kind"] == "multi":
        multi = MultiVectorFolder(folder)
        return {"ids": multi.docids, "vectors": np.asarray(multi.vectors), "offsets": multi.offsets}
    return {"records": list(iter_vector_records(folder))}


def assert_same(left: dict, right: dict, atol: float = 0.0) -> None:
    assert left.keys() == right.keys()
    for key in left:
        if isinstance(left[key], np.ndarray):
            np.testing.assert_allclose(left[key], right[key], atol=atol, rtol=0)
        else:
            assert left[key] == right[key], key


# --- layouts ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("representation", ["dense", "multi", "impact"])
def test_single_representation_writes_its_folder_at_embeddings(tmp_path, monkeypatch, representation):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(20))
    out = tmp_path / "out"
    assert run_main(monkeypatch, argv_for(corpus, out, representation)) == 0
    manifest = read_manifest(out)
    assert manifest["kind"] == {"impact": "impact-vectors"}.get(representation, representation)
    assert manifest["num_docs"] == 20 and manifest["encoder"]["representation"] == representation
    assert manifest["corpus"]["fields"] == ["title", "text"] and manifest["corpus"]["shard_range"] == [0, 20]
    expected = {
        "dense": ["docid", "index", "manifest.json"],
        "multi": ["docid", "manifest.json", "offsets.npy", "vectors.npy"],
        "impact": ["manifest.json", "vectors"],
    }[representation]
    assert sorted(p.name for p in out.iterdir()) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "out"]


def test_several_representations_come_from_one_pass(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(20))
    encoder = FakeEncoder()
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "all", "dense", "multi", "impact"), encoder) == 0
    assert encoder.calls == [3] * 6 + [2]  # one encode_all call per batch, not one per representation
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["dense", "impact", "multi"]
    ids = [d["_id"] for d in cranfield_like(20)]
    for name in ("dense", "multi"):
        assert load_folder(tmp_path / "all" / name)["ids"] == ids
        assert read_manifest(tmp_path / "all" / name)["encoder"]["representation"] == name
    records = load_folder(tmp_path / "all" / "impact")["records"]
    assert [docid for docid, _ in records] == ids
    assert records[1][1]["wing"] == 10 and records[1][1]["supersonic"] == 20  # title "Supersonic wing lift 1" used
    # each representation equals a run that asked for it alone
    for name in ("dense", "multi", "impact"):
        assert run_main(monkeypatch, argv_for(corpus, tmp_path / f"only-{name}", name)) == 0
        assert_same(load_folder(tmp_path / "all" / name), load_folder(tmp_path / f"only-{name}"))


def test_shards_merged_equal_an_unsharded_run(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(20))
    reps = ("dense", "multi", "impact")
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "full", *reps)) == 0
    for shard in range(3):
        argv = argv_for(
            corpus, tmp_path / f"shard{shard}", *reps, extra_input=("--shard-id", str(shard), "--shard-num", "3")
        )
        assert run_main(monkeypatch, argv) == 0
        assert read_manifest(tmp_path / f"shard{shard}" / "dense")["shard"] == {"id": shard, "num": 3}
    assert read_manifest(tmp_path / "shard2" / "multi")["corpus"]["shard_range"] == [12, 20]  # 20 // 3 = 6 each
    for name in reps:
        inputs = [str(tmp_path / f"shard{s}" / name) for s in (2, 0, 1)]  # any order
        assert index_cli.main(["merge", "--inputs", *inputs, "--output", str(tmp_path / f"merged-{name}")]) == 0
        assert_same(load_folder(tmp_path / f"merged-{name}"), load_folder(tmp_path / "full" / name))
        merged, full = read_manifest(tmp_path / f"merged-{name}"), read_manifest(tmp_path / "full" / name)
        assert merged["encoder"] == full["encoder"] and merged["num_docs"] == full["num_docs"] == 20


# --- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"_id": "x", "title": "t", "text": ', "line 4: invalid JSON"),
        ('{"title": "t", "text": "no id"}', "line 4: missing id"),
        ('{"_id": "x", "title": "t"}', r"line 4: missing text field\(s\) \['text'\]"),
        ('{"_id": "x", "title": " ", "text": ""}', "line 4: empty text in document 'x'"),
        ('{"_id": "cran2", "title": "t", "text": "dup"}', "line 4: duplicate id 'cran2'"),
    ],
)
def test_bad_records_fail_with_file_and_line_and_no_output(tmp_path, monkeypatch, caplog, bad_line, message):
    docs = cranfield_like(6)
    docs.insert(3, bad_line)
    corpus = write_corpus(tmp_path / "corpus.jsonl", docs)
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "out", "dense", "impact")) == 1
    assert str(corpus) in caplog.text and re.search(message, caplog.text), caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


@pytest.mark.parametrize(
    ("argv_change", "message"),
    [
        ({"fields": ["title"]}, "input --fields must be 'text' or 'title text'"),
        ({"fields": ["text", "url"]}, "input --fields must be 'text' or 'title text'"),
        ({"shard": ["--shard-id", "3", "--shard-num", "3"]}, "need 0 <= --shard-id < --shard-num"),
        ({"reps": ["dense", "dense"]}, "lists a representation twice"),
        ({"reps": ["sparse"]}, "invalid choice: 'sparse'"),
        ({"drop_output": True}, "missing group(s): output"),
        ({"input_extra": ["--on-error", "ignore"]}, "invalid choice: 'ignore'"),
        ({"input_extra": ["--max-record-bytes", "-1"]}, "input --max-record-bytes must be >= 0"),
        ({"output_extra": ["--checkpoint-every", "0"]}, "output --checkpoint-every must be >= 1"),
        ({"encoder_extra": ["--query-k", "0"]}, "argument --query-k/--k-query: must be an integer >= 1 (got '0')"),
        ({"encoder_extra": ["--k-query", "x"]}, "argument --query-k/--k-query: must be an integer >= 1 (got 'x')"),
        ({"encoder_extra": ["--query-max-length", "0"]}, "argument --query-max-length: must be an integer >= 1"),
        ({"encoder_extra": ["--batch-size", "0"]}, "argument --batch-size: must be an integer >= 1 (got '0')"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, argv_change, message):
    argv = [
        "input",
        "--corpus",
        str(tmp_path),
        "--fields",
        *argv_change.get("fields", ["text"]),
        *argv_change.get("shard", []),
        *argv_change.get("input_extra", []),
        "encoder",
        "--encoder",
        "m",
        "--representation",
        *argv_change.get("reps", ["dense"]),
        *argv_change.get("encoder_extra", []),
    ]
    if not argv_change.get("drop_output"):
        argv += ["output", "--embeddings", str(tmp_path / "o"), *argv_change.get("output_extra", [])]
    with pytest.raises(SystemExit) as info:
        encode_cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["--query-k", "--k-query"])
def test_query_k_is_also_accepted_in_the_train_cli_spelling(tmp_path, spelling):
    argv = ["input", "--corpus", str(tmp_path), "encoder", "--encoder", "m", spelling, "2"]
    args = encode_cli.parse_args(argv + ["output", "--embeddings", str(tmp_path / "o")])
    assert args.encoder.query_k == 2 and args.encoder.batch_size == 16  # settings.DEFAULT_BATCH_SIZE


def test_existing_output_is_refused_before_encoding_unless_overwrite(tmp_path, monkeypatch, caplog):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(4))
    (tmp_path / "out").mkdir()
    encoder = FakeEncoder()
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "out", "dense"), encoder) == 1
    assert "already exists" in caplog.text and encoder.calls == []
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "out", "dense", extra_output=["--overwrite"])) == 0
    assert read_manifest(tmp_path / "out")["num_docs"] == 4


def test_empty_impact_vectors_fail_or_are_reported(tmp_path, monkeypatch, caplog):
    docs = cranfield_like(5)
    docs[2]["text"] = "..."  # no word survives -> empty impact vector in the fake encoder
    docs[2]["title"] = ""
    corpus = write_corpus(tmp_path / "corpus.jsonl", docs)
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "strict", "impact")) == 1
    assert "document 'cran3' has an empty impact vector" in caplog.text
    assert not (tmp_path / "strict").exists()
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "lenient", "impact", extra_output=["--allow-empty"])) == 0
    assert read_manifest(tmp_path / "lenient")["num_skipped_empty"] == 1
    assert (tmp_path / "lenient" / "empty-vector-docids.txt").read_text() == "cran3\n"


# --- atomicity --------------------------------------------------------------------------------------------
def test_exception_mid_corpus_leaves_nothing(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(20))
    reader = JsonlCorpusReader(corpus, fields=("title", "text"))
    with pytest.raises(RuntimeError, match="encoder exploded"):
        encode_cli.encode_corpus(
            FakeEncoder(fail_after=3),
            reader,
            tmp_path / "out",
            ["dense", "multi", "impact"],
            batch_size=3,
            progress=False,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]


def test_resuming_with_other_expected_query_settings_is_refused(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(20))
    reader = JsonlCorpusReader(corpus, fields=("title", "text"))
    query = {"k": 4, "prompt": "few", "prompt_sha256": "a" * 64, "max_length": 512}
    with pytest.raises(RuntimeError, match="encoder exploded"):  # progress committed after each batch
        encode_cli.encode_corpus(
            FakeEncoder(fail_after=3),
            reader,
            tmp_path / "out",
            ["dense"],
            batch_size=3,
            sort_window=1,
            progress=False,
            checkpoint_every=1,
            query=query,
        )
    with pytest.raises(encode_cli.ResumeError, match=r"query\.k"):
        encode_cli.encode_corpus(
            FakeEncoder(),
            reader,
            tmp_path / "out",
            ["dense"],
            batch_size=3,
            sort_window=1,
            progress=False,
            checkpoint_every=1,
            query={**query, "k": 2},
        )
    encode_cli.encode_corpus(
        FakeEncoder(),
        reader,
        tmp_path / "out",
        ["dense"],
        batch_size=3,
        sort_window=1,
        progress=False,
        checkpoint_every=1,
        query=query,
    )
    assert read_manifest(tmp_path / "out")["query"] == query


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pyserini_diffretriever.cli.encode import encode_corpus
    from pyserini_diffretriever.corpus import JsonlCorpusReader

    class Slow:
        def settings(self):
            return {"backbone": "slow"}
        def encode_all(self, texts, titles=None, max_length=None, fp16=False):
            print("batch", flush=True)
            time.sleep(0.3)
            class B: pass
            b = B(); b.dense = np.ones((len(texts), 4), np.float32)
            b.multi = [np.ones((2, 4), np.float32)] * len(texts); b.impact = [{"w": 1}] * len(texts)
            return b

    reader = JsonlCorpusReader(sys.argv[1], fields=("title", "text"))
    encode_corpus(Slow(), reader, sys.argv[2], ["dense", "multi", "impact"], batch_size=2, progress=False)
    """
)


def test_sigkill_mid_run_leaves_no_finished_output(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(30))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(corpus), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for _ in range(3):  # three batches encoded and written: well inside the run
            assert process.stdout.readline().strip() == "batch", process.stderr.read()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    leftovers = sorted(p.name for p in tmp_path.glob("out.*"))
    assert leftovers == ["out.partial", "out.partial.lock"]  # the lock file is free again (flock died with the pid)
    assert not list((tmp_path / "out.partial").rglob("manifest.json"))


def test_the_driver_loads_no_model_library_until_an_encoder_needs_one():
    """Importing the encode CLI (corpus reader, writers, checkpoints, Ray driver) loads neither torch, transformers,
    NLTK nor FAISS: a run with another encoder, and every child process of the kill-and-resume trials, starts in
    about a second instead of paying 3-10 s of torch imports."""
    code = (
        "import sys, pyserini_diffretriever.cli.encode\n"
        "print(sorted(m for m in ('torch', 'transformers', 'nltk', 'faiss') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the real tiny Dream encoder --------------------------------------------------------------------------
@pytest.mark.jvm
@pytest.mark.slow
def test_tiny_dream_all_representations_and_shards(tmp_path, tiny_dream_dir):
    """Real encoder end to end: one run for three representations, FaissSearcher on the dense folder, and
    two shards merged == the unsharded run (up to float noise from different batch padding)."""
    from pyserini.search.faiss import FaissSearcher

    import pyserini_diffretriever  # noqa: F401  (Java before pyserini.search)
    from pyserini_diffretriever.encoders import DiffRetrieverQueryEncoder

    docs = cranfield_like(10)
    corpus = write_corpus(tmp_path / "corpus.jsonl", docs)
    common_encoder = ["--encoder", str(tiny_dream_dir), "--batch-size", "4", "--max-length", "64", "--device", "cpu"]

    def encode(out, *extra_input):
        argv = [
            "input",
            "--corpus",
            str(corpus),
            "--fields",
            "title",
            "text",
            *extra_input,
            "encoder",
            *common_encoder,
            "--representation",
            "dense",
            "multi",
            "impact",
            "output",
            "--embeddings",
            str(out),
            "--no-progress",
        ]
        assert encode_cli.main(argv) == 0

    encode(tmp_path / "full")
    dense = read_manifest(tmp_path / "full" / "dense", "dense")
    assert dense["num_docs"] == 10 and dense["dimension"] == dense["encoder"]["hidden_size"]
    assert dense["encoder"]["model_type"].lower() == "dream" and dense["encoder"]["max_length"] == 64
    impact = read_manifest(tmp_path / "full" / "impact", "impact-vectors")
    assert impact["quantization"] == impact["encoder"]["quantization"] and impact["num_skipped_empty"] == 0
    multi = MultiVectorFolder(tmp_path / "full" / "multi")
    assert multi.docids == [d["_id"] for d in docs] and multi.vectors.shape[1] == dense["dimension"]

    query_encoder = DiffRetrieverQueryEncoder(str(tiny_dream_dir), representation="dense", max_length=64)
    searcher = FaissSearcher(str(tmp_path / "full" / "dense"), query_encoder)
    hits = searcher.search("shock wave boundary layer", k=10)
    stored = load_folder(tmp_path / "full" / "dense")
    expected = stored["vectors"] @ query_encoder.encode("shock wave boundary layer")
    assert sorted(h.docid for h in hits) == sorted(stored["ids"])
    np.testing.assert_allclose(sorted(h.score for h in hits), np.sort(expected), rtol=1e-4, atol=1e-5)

    for shard in range(2):
        encode(tmp_path / f"s{shard}", "--shard-id", str(shard), "--shard-num", "2")
    for name in ("dense", "multi", "impact"):
        inputs = [str(tmp_path / f"s{s}" / name) for s in range(2)]
        assert index_cli.main(["merge", "--inputs", *inputs, "--output", str(tmp_path / f"m-{name}")]) == 0
        merged, full = load_folder(tmp_path / f"m-{name}"), load_folder(tmp_path / "full" / name)
        if name == "impact":
            assert [d for d, _ in merged["records"]] == [d for d, _ in full["records"]]
            for (_, left), (_, right) in zip(merged["records"], full["records"]):
                assert left.keys() == right.keys()
                assert all(abs(left[t] - right[t]) <= 1 for t in left)  # truncation of float noise
        else:
            assert_same(merged, full, atol=1e-4)


def test_unloadable_encoder_is_a_clean_error(tmp_path, caplog):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(3))
    argv = [
        "input",
        "--corpus",
        str(corpus),
        "encoder",
        "--encoder",
        str(tmp_path / "no-such-model"),
        "--device",
        "cpu",
        "output",
        "--embeddings",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert encode_cli.main(argv) == 1
    assert "cannot load encoder" in caplog.text and not (tmp_path / "out").exists()


def test_query_settings_need_a_diffretriever_encoder(tmp_path, monkeypatch, caplog):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(4))
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "plain", "dense")) == 0
    assert "query" not in read_manifest(tmp_path / "plain")  # a test double has no query side to record
    argv = argv_for(corpus, tmp_path / "out", "dense", extra_encoder=["--query-k", "2"])
    assert run_main(monkeypatch, argv) == 1
    assert "not a DiffRetriever encoder" in caplog.text and not (tmp_path / "out").exists()


def test_bad_query_prompt_is_refused_before_encoding(tmp_path, tiny_dream_dir, caplog):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(3))
    argv = [
        "input",
        "--corpus",
        str(corpus),
        "encoder",
        "--encoder",
        str(tiny_dream_dir),
        "--device",
        "cpu",
        "--max-length",
        "64",
        "--query-prompt",
        str(tmp_path / "missing.yaml"),
        "output",
        "--embeddings",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert encode_cli.main(argv) == 1
    assert "missing.yaml" in caplog.text and "does not exist" in caplog.text and not (tmp_path / "out").exists()


def test_multi_codec_writes_codes_equal_to_compressing_the_float_output(tmp_path, monkeypatch, caplog):
    from pyserini_diffretriever.indexing.compress_multi import compress_multivector
    from pyserini_diffretriever.writers import verify_output

    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(60))
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "float", "multi")) == 0
    compress_multivector(tmp_path / "float", tmp_path / "compressed", reduced_dimension=4, nlist=2)
    codec = tmp_path / "compressed" / "codec.faiss"
    argv = argv_for(corpus, tmp_path / "direct", "dense", "multi", extra_output=("--multi-codec", codec))
    assert run_main(monkeypatch, argv) == 0
    manifest = verify_output(tmp_path / "direct" / "multi", "multi-compressed")
    assert manifest["codec"]["factory"] == "given" and not (tmp_path / "direct/multi/vectors.npy").exists()
    for name in ("codes.npy", "offsets.npy", "docid"):
        assert (tmp_path / "direct/multi" / name).read_bytes() == (tmp_path / "compressed" / name).read_bytes()
    # refused before encoding: no multi requested, or not a codec
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "x", "dense", extra_output=("--multi-codec", codec))) == 1
    assert "not requested" in caplog.text
    bad = tmp_path / "bad.faiss"
    bad.write_bytes(b"junk")
    assert run_main(monkeypatch, argv_for(corpus, tmp_path / "y", "multi", extra_output=("--multi-codec", bad))) == 1
    assert "not a readable FAISS codec" in caplog.text and not (tmp_path / "y").exists()

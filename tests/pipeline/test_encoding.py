"""Length-bucketed windows and token budgets in the encode pipeline (pipeline.encoding), with the tiny real
Dream and LLaDA checkpoints: the same vectors as corpus order (1e-5), bounded windows, budgets kept or refused
by name, tokens counted, and byte-identical resume and Ray (tests/pipeline/test_distributed.py) with sorting on."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from reliability.harness import compare_trees, cranfield_like, write_corpus

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.corpus import JsonlCorpusReader
from pyserini_diffretriever.pipeline import encode_corpus
from pyserini_diffretriever.representation.bucketing import TokenBudgetError
from pyserini_diffretriever.representation.inputs import InputBuilder
from pyserini_diffretriever.writers import MultiVectorFolder, iter_vector_records, read_faiss_docids, read_manifest
from pyserini_diffretriever.writers.merge import merge_outputs

ALL = ("dense", "multi", "impact")
N_DOCS = 36


def mixed_lengths(n: int = N_DOCS) -> list[dict]:
    """Cranfield-like records with a long tail of extra words (4 to 69), in no length order."""
    rng = random.Random(5)
    docs = cranfield_like(n)
    for doc in docs:
        doc["text"] += " flow" * (int(rng.paretovariate(1.2) * 4) % 70)
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("bucketing") / "corpus.jsonl", mixed_lengths())


def _load(path: Path):
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder

    return DiffRetrieverDocumentEncoder(str(path), max_length=256, batch_size=4)


@pytest.fixture(scope="module")
def encoder(tiny_dream_dir):
    return _load(tiny_dream_dir)


def _encode(encoder, corpus: Path, out: Path, **options) -> Path:
    reader = JsonlCorpusReader(corpus, ["title", "text"])
    encode_corpus(encoder, reader, out, ALL, batch_size=4, progress=False, **options)
    return out


def _vectors(folder: Path) -> tuple[list[str], np.ndarray, list[np.ndarray], list[dict]]:
    """Docids, dense rows, multi-vector rows per document and impact vectors of an encode's three folders."""
    import faiss

    index = faiss.read_index(str(folder / "dense" / "index"))
    multi = MultiVectorFolder(folder / "multi")
    offsets = np.asarray(multi.offsets)
    vectors = np.asarray(multi.vectors)
    per_doc = [vectors[lo:hi] for lo, hi in zip(offsets[:-1], offsets[1:])]
    impact = [vector for _, vector in iter_vector_records(folder / "impact")]
    return read_faiss_docids(folder / "dense"), index.reconstruct_n(0, index.ntotal), per_doc, impact


@pytest.mark.parametrize("backbone", ["dream", "llada"])
def test_bucketed_windows_equal_corpus_order_and_compute_fewer_tokens(
    backbone, encoder, tiny_llada_dir, corpus, tmp_path
):
    encoder = encoder if backbone == "dream" else _load(tiny_llada_dir)
    bucketed = _encode(encoder, corpus, tmp_path / "bucketed", sort_window=4)
    in_order = _encode(encoder, corpus, tmp_path / "in-order", sort_window=1)
    ids, dense, multi, impact = _vectors(bucketed)
    ids_1, dense_1, multi_1, impact_1 = _vectors(in_order)
    assert ids == ids_1 == [f"cran{i + 1}" for i in range(N_DOCS)]  # written back in corpus order
    np.testing.assert_allclose(dense, dense_1, atol=1e-5)
    for left, right in zip(multi, multi_1, strict=True):
        np.testing.assert_allclose(left, right, atol=1e-5)
    same = sum(left == right for left, right in zip(impact, impact_1))
    assert same >= N_DOCS - 2  # integer impacts: a weight at a rounding edge may move by one
    tokens, tokens_1 = read_manifest(bucketed / "dense")["tokens"], read_manifest(in_order / "dense")["tokens"]
    assert tokens["real"] == tokens_1["real"] > 0
    assert tokens["real"] <= tokens["computed"] < tokens_1["computed"]
    assert read_manifest(bucketed / "impact")["tokens"] == tokens  # every folder of the run records them


class _Spy:
    """Wraps a real encoder: records each window it encodes and when (how far the corpus was read by then)."""

    def __init__(self, encoder, read: list[int]) -> None:
        self.encoder, self.read, self.windows = encoder, read, []

    def settings(self):
        return self.encoder.settings()

    def tokenize(self, *args, **kwargs):
        return self.encoder.tokenize(*args, **kwargs)

    def encode_all(self, texts, *args, **kwargs):
        self.windows.append((len(texts), self.read[0]))
        return self.encoder.encode_all(texts, *args, **kwargs)


def test_the_window_bounds_what_is_read_ahead_and_encoded_at_once(encoder, corpus, tmp_path, monkeypatch):
    read = [0]
    original = JsonlCorpusReader.iter_entries

    def counting(self, *args, **kwargs):
        for entry in original(self, *args, **kwargs):
            read[0] += 1
            yield entry

    monkeypatch.setattr(JsonlCorpusReader, "iter_entries", counting)
    spy = _Spy(encoder, read)
    _encode(spy, corpus, tmp_path / "out", sort_window=2)
    window = 4 * 2
    assert [size for size, _ in spy.windows] == [window] * (N_DOCS // window) + [N_DOCS % window]
    encoded = 0
    for size, read_by_then in spy.windows:
        assert read_by_then - encoded <= 2 * window  # this window plus at most the next, being tokenized
        encoded += size


def test_max_tokens_keeps_every_forward_pass_within_budget(encoder, corpus, tmp_path, monkeypatch):
    shapes: list[tuple[int, int]] = []
    original = InputBuilder.collate

    def recording(self, texts_ids):
        batch = original(self, texts_ids)
        shapes.append(tuple(batch.input_ids.shape))
        return batch

    monkeypatch.setattr(InputBuilder, "collate", recording)
    docs = mixed_lengths()
    lengths = encoder.tokenize([d["text"] for d in docs], [d["title"] for d in docs]).lengths
    budget = 3 * max(lengths) + 2  # three of the longest rows fit, four of the shortest too
    assert 4 * min(lengths) <= budget
    out = _encode(encoder, corpus, tmp_path / "budget", sort_window=4, max_tokens=budget)
    assert shapes and all(rows * length <= budget and rows <= 4 for rows, length in shapes)
    assert shapes[0][0] == 3 and any(rows == 4 for rows, _ in shapes)  # batch sizes follow lengths
    unbudgeted = _encode(encoder, corpus, tmp_path / "plain", sort_window=4)
    np.testing.assert_allclose(_vectors(out)[1], _vectors(unbudgeted)[1], atol=1e-5)
    assert read_manifest(out / "dense")["tokens"]["real"] == read_manifest(unbudgeted / "dense")["tokens"]["real"]


def test_a_budget_below_one_record_is_refused_naming_it(tiny_dream_dir, corpus, tmp_path, caplog):
    argv = [
        *("input", "--corpus", str(corpus), "--fields", "title", "text"),
        *("encoder", "--encoder", str(tiny_dream_dir), "--device", "cpu", "--max-length", "256"),
        *("--batch-size", "4", "--max-tokens", "60"),
        *("output", "--embeddings", str(tmp_path / "out"), "--no-progress"),
    ]
    assert encode_cli.main(argv) == 1
    assert "document 'cran" in caplog.text and "more than --max-tokens 60" in caplog.text, caplog.text
    assert not (tmp_path / "out").exists()


def test_max_tokens_needs_an_encoder_that_counts_tokens(corpus, tmp_path):
    from reliability.harness import FakeEncoder

    with pytest.raises(ValueError, match="max_tokens needs an encoder that counts tokens"):
        _encode(FakeEncoder(), corpus, tmp_path / "out", max_tokens=500)
    assert TokenBudgetError.__mro__[1] is ValueError


def test_resume_with_sorting_on_is_byte_identical(encoder, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    _encode(encoder, corpus, tmp_path / "reference", sort_window=2, checkpoint_every=1)
    calls = []
    original = encoder.encode_all

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("killed mid-run")
        return original(*args, **kwargs)

    monkeypatch.setattr(encoder, "encode_all", failing)
    with pytest.raises(RuntimeError, match="killed mid-run"):
        _encode(encoder, corpus, tmp_path / "resumed", sort_window=2, checkpoint_every=1)
    progress = json.loads((tmp_path / "resumed.partial" / "progress.json").read_text())["state"]
    assert progress["records_done"] == 24 and progress["tokens"]["real"] > 0  # three windows of 8 committed
    monkeypatch.setattr(encoder, "encode_all", original)
    _encode(encoder, corpus, tmp_path / "resumed", sort_window=2, checkpoint_every=1)
    assert compare_trees(tmp_path / "reference", tmp_path / "resumed") == []


def test_shards_merged_equal_one_run_and_sum_their_tokens(encoder, corpus, tmp_path):
    whole = _encode(encoder, corpus, tmp_path / "whole", sort_window=2)
    shards = [_encode(encoder, corpus, tmp_path / f"shard{i}", sort_window=2, shard=(i, 2)) for i in range(2)]
    merged = tmp_path / "merged"
    for name in ALL:
        merge_outputs([shard / name for shard in shards], merged / name)
    ids, dense, _, _ = _vectors(merged)
    ids_1, dense_1, _, _ = _vectors(whole)
    assert ids == ids_1
    np.testing.assert_allclose(dense, dense_1, atol=1e-5)
    tokens = [read_manifest(shard / "dense")["tokens"] for shard in shards]
    assert read_manifest(merged / "dense")["tokens"] == {
        "real": tokens[0]["real"] + tokens[1]["real"],
        "computed": tokens[0]["computed"] + tokens[1]["computed"],
    }
    assert read_manifest(merged / "dense")["tokens"]["real"] == read_manifest(whole / "dense")["tokens"]["real"]

"""Micro-batching: concurrent queries share forward passes and get exactly what one-by-one encoding gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pyserini_diffretriever.encoders import DiffRetrieverQueryEncoder
from pyserini_diffretriever.serving.batching import BatchedQueryEncoder, MicroBatcher, encode_ahead

QUERIES = [
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft",
    "wing flutter",
    "heat transfer at high mach number",
    "shock wave boundary layer interaction in supersonic flow over a flat plate with a long description",
    "a",
    "wing flutter",  # a duplicate in the same batch
    "boundary layer transition",
    "panel flutter at hypersonic speeds",
]


@pytest.fixture(scope="module")
def encoders(tiny_dream_dir):
    dense = DiffRetrieverQueryEncoder(str(tiny_dream_dir), representation="dense", max_length=64)
    multi = DiffRetrieverQueryEncoder(dense.model, representation="multi", max_length=64)
    impact = DiffRetrieverQueryEncoder(dense.model, representation="impact", max_length=64)
    return {"dense": dense, "multi": multi, "impact": impact}


def _same(a, b) -> None:
    if isinstance(a, dict):
        assert a == b
    else:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=0)


def _concurrently(function, items):
    results: dict[int, object] = {}
    start = threading.Barrier(len(items))

    def run(i, item):
        start.wait()
        results[i] = function(item)

    threads = [threading.Thread(target=run, args=(i, item)) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return [results[i] for i in range(len(items))]


def test_concurrent_queries_get_the_one_by_one_vectors_from_fewer_passes(encoders):
    batcher = MicroBatcher(encoders["dense"].model, window_ms=50, max_batch=32)
    try:
        wrapped = {name: BatchedQueryEncoder(encoder, batcher) for name, encoder in encoders.items()}
        jobs = [(name, query) for name in wrapped for query in QUERIES]
        served = _concurrently(lambda job: wrapped[job[0]].encode(job[1]), jobs)
        for (name, query), value in zip(jobs, served):
            _same(value, encoders[name].encode(query))
        assert batcher.queries == len(jobs) and batcher.batches < len(jobs) / 2
    finally:
        batcher.close()


def test_encode_batch_and_encode_ahead_match_the_wrapped_encoders(encoders):
    batcher = MicroBatcher(encoders["dense"].model, window_ms=0)
    try:
        dense = BatchedQueryEncoder(encoders["dense"], batcher)
        impact = BatchedQueryEncoder(encoders["impact"], batcher)
        _same(dense.encode_batch(QUERIES), encoders["dense"].encode_batch(QUERIES))
        assert dense.settings() == encoders["dense"].settings() and dense.dimension == encoders["dense"].dimension
        before = batcher.batches
        with encode_ahead([dense, impact], "wing flutter"):
            _same(dense.encode("wing flutter"), encoders["dense"].encode("wing flutter"))
            _same(impact.encode("wing flutter"), encoders["impact"].encode("wing flutter"))
        assert batcher.batches == before + 1  # both representations from one pass
    finally:
        batcher.close()


def test_a_failing_pass_reaches_its_callers_and_the_worker_lives_on(encoders, monkeypatch):
    model = encoders["dense"].model
    batcher = MicroBatcher(model, window_ms=0)
    try:
        wrapped = BatchedQueryEncoder(encoders["dense"], batcher)
        original = model.encode_side

        def broken(*args, **kwargs):
            raise RuntimeError("device lost")

        monkeypatch.setattr(model, "encode_side", broken)
        with pytest.raises(RuntimeError, match="device lost"):
            wrapped.encode("wing flutter")
        monkeypatch.setattr(model, "encode_side", original)
        _same(wrapped.encode("wing flutter"), encoders["dense"].encode("wing flutter"))
    finally:
        batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(encoders["dense"]._side, "late", ("dense",))


def test_refuses_bad_settings_and_foreign_models(encoders, tiny_dream_dir):
    with pytest.raises(ValueError, match="window_ms"):
        MicroBatcher(encoders["dense"].model, window_ms=-1)
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(encoders["dense"].model, max_batch=0)
    other = DiffRetrieverQueryEncoder(str(tiny_dream_dir), representation="dense", max_length=64)
    batcher = MicroBatcher(encoders["dense"].model)
    try:
        with pytest.raises(ValueError, match="another model"):
            batcher.submit(other._side, "wing", ("dense",))
    finally:
        batcher.close()


def test_a_token_budget_splits_mixed_length_micro_batches_into_sorted_passes(encoders, monkeypatch):
    """One long query does not make the whole micro-batch pay its length: the budget splits it, longest first,
    and every query still gets its one-by-one vectors; tokens are counted."""
    from pyserini_diffretriever.representation.inputs import InputBuilder

    dense = encoders["dense"]
    lengths = dense._side.tokenize(QUERIES).lengths
    budget = 3 * max(lengths)
    shapes: list[tuple[int, int]] = []
    original = InputBuilder.collate

    def recording(self, texts_ids):
        batch = original(self, texts_ids)
        shapes.append(tuple(batch.input_ids.shape))
        return batch

    monkeypatch.setattr(InputBuilder, "collate", recording)
    batcher = MicroBatcher(dense.model, window_ms=200, max_batch=32, max_tokens=budget)
    try:
        wrapped = BatchedQueryEncoder(dense, batcher)
        got = _concurrently(wrapped.encode, QUERIES)
    finally:
        batcher.close()
    monkeypatch.setattr(InputBuilder, "collate", original)
    for query, vector in zip(QUERIES, got):
        _same(vector, dense.encode(query))
    assert len(shapes) >= 3 and all(rows * length <= budget for rows, length in shapes)
    assert [length for _, length in shapes] == sorted(
        (length for _, length in shapes), reverse=True
    ) or batcher.batches > 1
    assert batcher.tokens.real >= sum(sorted(set(lengths))) and batcher.tokens.computed <= len(shapes) * budget

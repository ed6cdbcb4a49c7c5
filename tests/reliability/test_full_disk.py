"""A full disk (simulated): every write of the encoder goes through ``writers._files.open_output``; the disk "fills"
after B bytes (``OSError(ENOSPC)``, and fsync fails from then on). Each run must stop with one clear message,
leave nothing that looks finished, keep the committed work, and a rerun after space is freed must end
byte-identical to a run that never failed."""

from __future__ import annotations

import logging
import random

import pytest

from pyserini_diffretriever.cli import encode as encode_cli

from .harness import FakeEncoder, IOFaults, compare_trees, cranfield_like, encode_argv, siblings, write_corpus

SEED = 7
RANDOM_BUDGETS = 8


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: FakeEncoder())
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(30))
    with monkeypatch.context() as patch:
        counter = IOFaults().install(patch.setattr)
        assert encode_cli.main(encode_argv(corpus, tmp_path / "ref")) == 0
    return tmp_path, corpus, counter


def _fill_disk_after(tmp_path, corpus, monkeypatch, caplog, budget, name):
    caplog.clear()
    with monkeypatch.context() as patch:
        faults = IOFaults(enospc_after=budget).install(patch.setattr)
        status = encode_cli.main(encode_argv(corpus, tmp_path / name))
    return status, faults


def test_full_disk_at_random_points_then_rerun_is_byte_identical(setup, monkeypatch, caplog):
    tmp_path, corpus, counter = setup
    total = counter.bytes_written
    rng = random.Random(SEED)
    budgets = [0, 100, *sorted(rng.sample(range(200, total), RANDOM_BUDGETS)), total - 200, total - 1]
    kept = 0
    for trial, budget in enumerate(budgets):
        name = f"disk{trial}"
        status, faults = _fill_disk_after(tmp_path, corpus, monkeypatch, caplog, budget, name)
        assert status == 1 and faults.enospc_hits, budget
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "No space left on device" in errors[0], errors
        assert errors[0].startswith(f"cannot write {tmp_path / name}: [Errno 28]")
        assert "Traceback" not in caplog.text
        assert not (tmp_path / name).exists()  # nothing looks finished
        committed = (tmp_path / f"{name}.partial" / "progress.json").is_file()
        assert ("rerun the same command to resume" in errors[0]) == committed
        assert siblings(tmp_path / name) == ([f"{name}.partial"] if committed else [])  # lock released
        kept += committed
        assert encode_cli.main(encode_argv(corpus, tmp_path / name)) == 0  # space freed: rerun
        assert compare_trees(tmp_path / "ref", tmp_path / name) == [], budget
    assert kept >= len(budgets) - 3  # most failures happen after the first commit and keep the work


def test_full_disk_while_finishing_keeps_every_encoded_record(setup, monkeypatch, caplog):
    """ENOSPC while streaming the FAISS index (all records encoded): the rerun encodes nothing again."""
    tmp_path, corpus, counter = setup
    index_start = next(before for path, before in counter.writes if path.endswith("/dense/index.tmp"))
    status, faults = _fill_disk_after(tmp_path, corpus, monkeypatch, caplog, index_start + 100, "late")
    assert status == 1 and faults.enospc_hits == [str(tmp_path / "late.partial" / "dense" / "index.tmp")]
    encoder = FakeEncoder()
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: encoder)
    assert encode_cli.main(encode_argv(corpus, tmp_path / "late")) == 0
    assert encoder.calls == []
    assert compare_trees(tmp_path / "ref", tmp_path / "late") == []

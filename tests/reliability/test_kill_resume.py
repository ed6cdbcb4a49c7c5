"""Kill-and-resume: an encode killed at any moment (SIGKILL) and rerun with the same command ends with files
byte-identical to an uninterrupted run; nothing looks finished before it is; a rerun that cannot resume says why.

Two kinds of trials:

* I/O-event kills (fast, deterministic): the encode CLI runs in a child with the fake encoder and kills itself
  at its N-th write-side I/O event (a torn write, an fsync, a rename, ...; see ``harness.IOFaults``), for seeded
  random N and for the events of every finishing step.
* Wall-clock kills: the real ``python -m pyserini_diffretriever.encode`` with the tiny Dream checkpoint is
  SIGKILLed from outside at seeded random times while it encodes.

All runs set ``SOURCE_DATE_EPOCH`` so that "byte-identical" covers every file, manifests included.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re

import pytest

from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.writers import read_manifest, verify_output

from .harness import (
    FakeEncoder,
    compare_trees,
    cranfield_like,
    encode_argv,
    encode_module_command,
    kill_after,
    run_child,
    siblings,
    write_corpus,
)

SEED = 20240605
RANDOM_EVENT_TRIALS = 12
FINISHING_STEPS = [  # regexes over the trace of the reference run: the first event matching each is a kill point
    r"replace .*\.partial/progress\.json$",  # the first commit
    r"write .*/dense/index\.tmp$",  # streaming the FAISS index
    r"replace .*/dense/index$",
    r"write .*/multi/vectors\.npy$(?![\s\S])",  # (last) the .npy header rewrite
    r"replace .*/impact/manifest\.json$",
    r"unlink .*/dense/vectors\.f32\.tmp$",  # cleanup after the "finished" commit
    r"unlink .*\.partial/progress\.json$",
    r"replace .*/(ref)$",  # the final rename
]


@pytest.fixture(scope="module")
def fake_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    corpus = write_corpus(root / "corpus.jsonl", cranfield_like(40))
    reference = run_child(encode_argv(corpus, root / "ref"), root, trace=True)
    assert reference.returncode == 0, reference.stderr
    return root, corpus, reference


def _trial(root, corpus, name, kill_points):
    """Kill a run at each of ``kill_points`` in turn (events of that run), then finish; return the report."""
    out = root / name
    labels = []
    for point in kill_points:
        killed = run_child(encode_argv(corpus, out), root, kill_at=point)
        assert killed.returncode == -9, killed.stderr
        labels.append(killed.kill_label)
        if out.exists():  # killed after the final rename: nothing left to do but a stale lock
            assert siblings(out) == [name, f"{name}.partial.lock"]
            return out, labels
        assert siblings(out) in ([], [f"{name}.partial", f"{name}.partial.lock"], [f"{name}.partial.lock"])
        assert not list(root.glob(f"{name}.partial/**/manifest.json")) or (root / f"{name}.partial").is_dir()
    final = run_child(encode_argv(corpus, out), root)
    assert final.returncode == 0, final.stderr
    assert siblings(out) == [name]
    return out, labels


def test_kill_at_random_io_events_then_rerun_is_byte_identical(fake_setup):
    root, corpus, reference = fake_setup
    rng = random.Random(SEED)
    points = sorted(rng.sample(range(1, reference.events + 1), RANDOM_EVENT_TRIALS))
    for trial, point in enumerate(points):
        out, labels = _trial(root, corpus, f"random{trial}", [point])
        assert compare_trees(root / "ref", out) == [], (point, labels)


def test_kill_at_every_finishing_step_then_rerun_is_byte_identical(fake_setup):
    root, corpus, reference = fake_setup
    events = [line.split("\t", 1) for line in reference.trace]
    for step, pattern in enumerate(FINISHING_STEPS):
        point = next(int(n) for n, label in events if re.search(pattern, label.replace(str(root), "")))
        out, labels = _trial(root, corpus, f"step{step}", [point])
        assert compare_trees(root / "ref", out) == [], (pattern, labels)


def test_killed_twice_then_rerun_is_byte_identical(fake_setup):
    root, corpus, reference = fake_setup
    third = reference.events // 3
    out, labels = _trial(root, corpus, "twice", [third, third])  # the resumed run is killed again
    assert compare_trees(root / "ref", out) == []
    assert all(label.startswith(str(third)) for label in labels)


def test_kill_before_the_first_commit_leaves_nothing_to_resume(fake_setup):
    root, corpus, _ = fake_setup
    killed = run_child(encode_argv(corpus, root / "early"), root, kill_at=3)
    assert killed.returncode == -9 and not (root / "early.partial" / "progress.json").exists()
    assert not (root / "early").exists()
    final = run_child(encode_argv(corpus, root / "early"), root)
    assert final.returncode == 0 and "no committed work; starting over" in final.stderr
    assert compare_trees(root / "ref", root / "early") == []


# --- reruns that must not resume ------------------------------------------------------------------------------
def _interrupted(tmp_path, monkeypatch, batches=4, docs=20):
    """An unfinished OUT.partial: the encoder fails after ``batches`` batches, each committed."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(docs))
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: FakeEncoder(fail_after=batches))
    with pytest.raises(RuntimeError, match="encoder exploded"):
        encode_cli.main(encode_argv(corpus, tmp_path / "out", representations=("dense", "impact")))
    progress = json.loads((tmp_path / "out.partial" / "progress.json").read_text())
    assert progress["state"]["records_done"] == 3 * batches
    return corpus


def _main(monkeypatch, corpus, out, *extra_output, batch_size=3, extra_input=()):
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: FakeEncoder())
    return encode_cli.main(
        encode_argv(
            corpus,
            out,
            representations=("dense", "impact"),
            batch_size=batch_size,
            extra_input=extra_input,
            extra_output=extra_output,
        )
    )


def test_resume_after_an_exception_equals_an_uninterrupted_run(tmp_path, monkeypatch, caplog):
    corpus = _interrupted(tmp_path, monkeypatch)
    assert "unfinished output kept in" in caplog.text and "12 records committed" in caplog.text
    assert "encoding failed unexpectedly; the unfinished output is kept in" in caplog.text
    encoder = FakeEncoder()
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: encoder)
    argv = encode_argv(corpus, tmp_path / "out", representations=("dense", "impact"))
    assert encode_cli.main(argv) == 0
    assert encoder.calls == [3, 3, 2]  # only the 8 records not committed yet were encoded
    assert _main(monkeypatch, corpus, tmp_path / "fresh") == 0
    assert compare_trees(tmp_path / "fresh", tmp_path / "out") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 4}, r"batch_size: 3 \(unfinished run\) vs 4 \(this run\)"),
        ({"extra_input": ["--on-error", "skip"]}, r"corpus\.on_error: 'strict' \(unfinished run\) vs 'skip'"),
        ({"extra_output": ["--allow-empty"]}, r"allow_empty: False \(unfinished run\) vs True"),
    ],
)
def test_rerun_with_other_settings_is_refused_and_keeps_the_partial(tmp_path, monkeypatch, caplog, change, message):
    corpus = _interrupted(tmp_path, monkeypatch)
    before = sorted(p.name for p in (tmp_path / "out.partial").rglob("*"))
    status = _main(
        monkeypatch,
        corpus,
        tmp_path / "out",
        *change.get("extra_output", ()),
        batch_size=change.get("batch_size", 3),
        extra_input=change.get("extra_input", ()),
    )
    assert status == 1
    assert re.search(message, caplog.text) and "--restart" in caplog.text
    assert sorted(p.name for p in (tmp_path / "out.partial").rglob("*")) == before
    assert not (tmp_path / "out").exists()


def test_other_encoder_settings_are_refused(tmp_path, monkeypatch, caplog):
    corpus = _interrupted(tmp_path, monkeypatch)

    class OtherK(FakeEncoder):
        def settings(self):
            return {**super().settings(), "k": 8}

    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: OtherK())
    assert encode_cli.main(encode_argv(corpus, tmp_path / "out", representations=("dense", "impact"))) == 1
    assert "encoder.dense.k: 3 (unfinished run) vs 8 (this run)" in caplog.text


def test_restart_discards_the_partial(tmp_path, monkeypatch):
    corpus = _interrupted(tmp_path, monkeypatch)
    assert _main(monkeypatch, corpus, tmp_path / "out", "--restart", batch_size=4) == 0
    assert _main(monkeypatch, corpus, tmp_path / "fresh", batch_size=4) == 0
    assert compare_trees(tmp_path / "fresh", tmp_path / "out") == []


def test_changed_corpus_prefix_is_refused(tmp_path, monkeypatch, caplog):
    corpus = _interrupted(tmp_path, monkeypatch)
    lines = corpus.read_text().splitlines()
    lines[2] = lines[2].replace("case 2", "case II")  # an already-encoded record changed, same record count
    corpus.write_text("\n".join(lines) + "\n")
    assert _main(monkeypatch, corpus, tmp_path / "out") == 1
    assert "the first 12 records of" in caplog.text and "changed since the unfinished run" in caplog.text


def test_changed_record_after_the_prefix_is_encoded_as_it_is_now(tmp_path, monkeypatch):
    corpus = _interrupted(tmp_path, monkeypatch)
    lines = corpus.read_text().splitlines()
    lines[15] = lines[15].replace("case 15", "case XV")  # not encoded yet
    corpus.write_text("\n".join(lines) + "\n")
    assert _main(monkeypatch, corpus, tmp_path / "out") == 0
    assert _main(monkeypatch, corpus, tmp_path / "fresh") == 0
    assert compare_trees(tmp_path / "fresh", tmp_path / "out") == []


def test_grown_corpus_is_refused(tmp_path, monkeypatch, caplog):
    corpus = _interrupted(tmp_path, monkeypatch)
    with open(corpus, "a") as handle:
        handle.write(json.dumps({"_id": "new", "title": "t", "text": "appended"}) + "\n")
    assert _main(monkeypatch, corpus, tmp_path / "out") == 1
    assert "corpus.num_records: 20 (unfinished run) vs 21 (this run)" in caplog.text


def test_second_concurrent_run_is_refused(tmp_path, monkeypatch, caplog):
    corpus = _interrupted(tmp_path, monkeypatch)
    lock = tmp_path / "out.partial.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242 otherhost\n")
        assert _main(monkeypatch, corpus, tmp_path / "out") == 1
        assert "is being written by another run (pid/host 4242 otherhost" in caplog.text
        assert (tmp_path / "out.partial" / "progress.json").is_file()
    finally:
        os.close(fd)
    assert _main(monkeypatch, corpus, tmp_path / "out") == 0  # once the other run is gone


@pytest.mark.parametrize("damage", ["truncate-committed", "delete-committed", "corrupt-progress"])
def test_damaged_partial_is_reported(tmp_path, monkeypatch, caplog, damage):
    corpus = _interrupted(tmp_path, monkeypatch)
    partial = tmp_path / "out.partial"
    if damage == "truncate-committed":
        os.truncate(partial / "dense" / "docid", 5)
        expected = r"dense/docid: 5 bytes, but the checkpoint committed \d+ bytes; the unfinished output is damaged"
    elif damage == "delete-committed":
        (partial / "impact" / "vectors" / "part-00000.jsonl").unlink()
        expected = r"part-00000\.jsonl: missing, but the checkpoint committed"
    else:
        (partial / "progress.json").write_text('{"format": "pyserini-diffretriever-progress", "st')
        expected = r"progress\.json: cannot read the progress of the unfinished run .*--restart"
    assert _main(monkeypatch, corpus, tmp_path / "out") == 1
    assert re.search(expected, caplog.text), caplog.text
    assert "Traceback" not in caplog.text and not (tmp_path / "out").exists()
    assert _main(monkeypatch, corpus, tmp_path / "out", "--restart") == 0
    verify_output(tmp_path / "out" / "dense")


def test_rerun_of_a_finished_output_says_it_exists(tmp_path, monkeypatch, caplog):
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(5))
    assert _main(monkeypatch, corpus, tmp_path / "out") == 0
    assert _main(monkeypatch, corpus, tmp_path / "out") == 1
    assert "already exists; choose another output or pass --overwrite" in caplog.text


# --- the real command, killed from outside ----------------------------------------------------------------
WALL_CLOCK_TRIALS = 1  # each costs two cold starts of the real CLI; benchmarks/fault_injection.py runs more


@pytest.mark.slow
def test_real_encoder_killed_at_a_random_time_resumes_byte_identical(tmp_path, tiny_dream_dir):
    """``python -m pyserini_diffretriever.encode`` with tiny Dream (CPU, float32), SIGKILLed at a random moment
    of its encoding and rerun, ends byte-identical to an uninterrupted run in another process."""
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(40))

    def command(out):
        return encode_module_command(
            encode_argv(
                corpus,
                out,
                encoder=str(tiny_dream_dir),
                batch_size=4,
                checkpoint_every=4,
                sort_window=2,  # length-sorted windows of 8 records, one commit each
                extra_encoder=["--max-length", "64", "--device", "cpu"],
            )
        )

    status, window = kill_after(command(tmp_path / "ref"), tmp_path / "ref", None)
    assert status == 0 and window > 0
    assert read_manifest(tmp_path / "ref" / "dense")["created"] == "2023-11-14T22:13:20+00:00"
    rng = random.Random(SEED)
    for trial in range(WALL_CLOCK_TRIALS):
        out = tmp_path / f"trial{trial}"
        delay = rng.uniform(0.05, 0.6) * window
        status, _ = kill_after(command(out), out, delay)
        if status == -9:  # killed (the usual case); else the run was faster than its random kill time
            assert not out.exists() and (tmp_path / f"trial{trial}.partial").is_dir()
            status, _ = kill_after(command(out), out, None)
        assert status == 0
        assert compare_trees(tmp_path / "ref", out) == [], f"trial {trial}, kill after {delay:.2f}s of {window:.2f}s"
        assert siblings(out) == [out.name]


@pytest.mark.slow
def test_real_encoder_is_deterministic(tmp_path, tiny_dream_dir, monkeypatch):
    """Encoding the same input twice (CPU, float32) gives identical files, manifests included."""
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    corpus = write_corpus(tmp_path / "corpus.jsonl", cranfield_like(24))
    encoder = DiffRetrieverDocumentEncoder(str(tiny_dream_dir), max_length=64, batch_size=4)
    monkeypatch.setattr(encode_cli, "load_encoder", lambda args: encoder)
    for name in ("first", "second"):
        argv = encode_argv(
            corpus,
            tmp_path / name,
            encoder=str(tiny_dream_dir),
            batch_size=4,
            checkpoint_every=1000,
            extra_encoder=["--max-length", "64", "--device", "cpu"],
        )
        assert encode_cli.main(argv) == 0
    assert compare_trees(tmp_path / "first", tmp_path / "second") == []
    assert (tmp_path / "first" / "impact" / "vectors" / "part-00003.jsonl").is_file()  # 24 records, 7 per part

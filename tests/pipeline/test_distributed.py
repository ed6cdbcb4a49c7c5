"""Encoding on Ray (pipeline.distributed): the same bytes as one process, whatever Ray does to the workers.

A real single-node Ray cluster (``ray.init(num_cpus=2)``, loopback only) runs the tiny Dream and LLaDA
checkpoints; every Ray output is compared file by file with the single-process driver's output of the same
corpus and settings (manifests without their ``distributed`` record of the workers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from reliability.harness import REPO_ROOT, child_env, cranfield_like, tree_files, write_corpus

from pyserini_diffretriever.corpus import CorpusError, JsonlCorpusReader, SkippedRecord
from pyserini_diffretriever.pipeline import encode_corpus
from pyserini_diffretriever.pipeline.distributed import (
    BlockEncoder,
    RayOptions,
    RayUnavailableError,
    WorkerOutOfMemoryError,
    _Block,
    _SpillStore,
    encode_corpus_on_ray,
    import_ray,
)

ALL = ("dense", "multi", "impact")
IN_MAKE_BENCH = [pytest.mark.slow, pytest.mark.bench]
"""Ray runs beyond the two that ``make test`` keeps (Dream byte-identical, strict-mode error): each starts fresh
workers that import torch and load a model, minutes on a loaded 2-core machine, so ``make bench`` runs them
(README, "The two commands")."""


def _encoder(path: str) -> partial:
    """A factory the Ray workers can unpickle: a partial of the package's encoder class (importable there)."""
    from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder
    from pyserini_diffretriever.settings import EncoderSettings

    settings = EncoderSettings.given(representation="dense", device="cpu", max_length=96, batch_size=8)
    return partial(DiffRetrieverDocumentEncoder, path, settings=settings)  # as the encode CLI builds it


def _comparable(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; manifests without the Ray run's ``distributed`` record."""
    files = tree_files(folder)
    for name in [name for name in files if name.endswith("manifest.json")]:
        manifest = json.loads(files[name])
        manifest.pop("distributed", None)
        files[name] = json.dumps(manifest, sort_keys=True).encode()
    return files


def assert_same_output(single: Path, distributed: Path) -> None:
    left, right = _comparable(single), _comparable(distributed)
    assert sorted(left) == sorted(right)
    different = [name for name in left if left[name] != right[name]]
    assert not different, f"files differ between one process and Ray: {different}"
    manifest = json.loads((distributed / "dense" / "manifest.json").read_text())
    assert manifest["distributed"]["engine"] == "ray"
    assert manifest["tokens"]["computed"] >= manifest["tokens"]["real"] > 0  # counted on the workers


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="ray is in the lock file; its absence is tested separately")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("ray-corpus") / "corpus.jsonl", cranfield_like(310))


def _reader(path: Path, on_error: str = "strict") -> JsonlCorpusReader:
    return JsonlCorpusReader(path, ["title", "text"], on_error=on_error)


SORT_WINDOW = 3  # length-sorted windows of 24 records: several windows and blocks in the 310-record corpus


def _cli_argv(model: Path, corpus_path: Path, out: Path, on_error: str = "strict") -> list[str]:
    """The plain encode command the Ray runs are compared with (the settings of :func:`_encoder`)."""
    return [
        *("input", "--corpus", str(corpus_path), "--fields", "title", "text", "--on-error", on_error),
        *("encoder", "--encoder", str(model), "--representation", *ALL, "--device", "cpu"),
        *("--batch-size", "8", "--sort-window", str(SORT_WINDOW), "--max-length", "96"),
        *("output", "--embeddings", str(out), "--no-progress"),
    ]


def _single(model: Path, corpus_path: Path, out: Path, on_error: str = "strict") -> Path:
    """The single-process command line's output (run in this process)."""
    from pyserini_diffretriever.cli import encode

    assert encode.main(_cli_argv(model, corpus_path, out, on_error)) == 0
    return out


def _on_ray(model: Path, corpus_path: Path, out: Path, workers: int, block_size: int, on_error: str = "strict"):
    """The same encode as :func:`_single`, on the test's Ray cluster."""
    options = RayOptions(workers=workers, block_size=block_size)
    reader = _reader(corpus_path, on_error)
    return encode_corpus_on_ray(
        _encoder(str(model)),
        reader,
        out,
        ALL,
        ray_options=options,
        batch_size=8,
        sort_window=SORT_WINDOW,
        max_length=96,
        progress=False,
    )


@pytest.fixture(scope="module")
def dream_reference(corpus, tiny_dream_dir, tmp_path_factory) -> Path:
    """The single-process output of the 310-record corpus (several tests compare with it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", "1700000000")
        return _single(tiny_dream_dir, corpus, tmp_path_factory.mktemp("reference") / "single")


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["dream", pytest.param("llada", marks=IN_MAKE_BENCH)])
def test_ray_output_is_byte_identical_to_one_process(
    backbone, ray_cluster, corpus, dream_reference, tiny_dream_dir, tiny_llada_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    model = tiny_dream_dir if backbone == "dream" else tiny_llada_dir
    single = dream_reference if backbone == "dream" else _single(model, corpus, tmp_path / "single")
    folders = _on_ray(model, corpus, tmp_path / "ray", workers=2, block_size=24)
    assert folders == {name: tmp_path / "ray" / name for name in ALL}
    assert_same_output(single, tmp_path / "ray")
    assert not (tmp_path / "ray.ray-blocks").exists()


def _ray_worker_pids() -> list[int]:
    import psutil

    return [
        process.pid
        for process in psutil.process_iter(["cmdline"])
        if any("BlockEncoder" in part for part in (process.info["cmdline"] or []))
    ]


@pytest.mark.slow
@pytest.mark.bench
def test_a_worker_killed_mid_run_is_retried_and_the_output_is_unchanged(
    ray_cluster, corpus, dream_reference, tiny_dream_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_one_worker_after_first_commit() -> None:
        progress = out.with_name("ray.partial") / "progress.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            busy = _ray_worker_pids() if progress.exists() else []
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker_after_first_commit)
    killer.start()
    try:
        _on_ray(tiny_dream_dir, corpus, out, workers=2, block_size=8)
    finally:
        killer.join()
    assert killed, "no Ray worker was found to kill while the run was going"
    assert_same_output(dream_reference, out)


def _records_done(progress: Path) -> int:
    return json.loads(progress.read_text())["state"].get("records_done", 0)


@pytest.mark.slow
@pytest.mark.bench
def test_driver_killed_then_the_same_command_resumes(ray_cluster, corpus, dream_reference, tiny_dream_dir, tmp_path):
    single_env = child_env(OMP_NUM_THREADS="1")
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "pyserini_diffretriever.encode", *_cli_argv(tiny_dream_dir, corpus, out)]
    address = ray_cluster.get_runtime_context().gcs_address
    ray_command = [*command, "ray", "--address", address, "--workers", "2", "--block-size", "8"]
    driver = subprocess.Popen(ray_command, env=single_env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    progress = tmp_path / "ray.partial" / "progress.json"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and driver.poll() is None:
        if progress.exists() and _records_done(progress) >= 40:
            break
        time.sleep(0.05)
    assert driver.poll() is None, f"the driver ended before it could be killed: {driver.stderr.read()[-2000:]}"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    committed = _records_done(progress)
    assert 0 < committed < 310

    resumed = subprocess.run(ray_command, env=single_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_output(dream_reference, out)


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory) -> Path:
    lines: list = cranfield_like(40)
    lines.insert(5, b"{not json")
    lines.insert(17, {"_id": "cran3", "title": "t", "text": "a duplicate id"})
    lines.insert(30, {"_id": "no-text", "title": "only a title"})
    return write_corpus(tmp_path_factory.mktemp("ray-bad") / "bad.jsonl", lines)


@pytest.mark.slow
@pytest.mark.bench
def test_bad_records_skip_mode_lists_them_exactly_as_one_process(
    ray_cluster, bad_corpus, tiny_dream_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    single = _single(tiny_dream_dir, bad_corpus, tmp_path / "single", on_error="skip")
    _on_ray(tiny_dream_dir, bad_corpus, tmp_path / "ray", workers=2, block_size=8, on_error="skip")
    assert_same_output(single, tmp_path / "ray")
    report = (tmp_path / "ray" / "impact" / "skipped-records.jsonl").read_text().splitlines()
    assert [json.loads(line)["line"] for line in report] == [6, 18, 31]


@pytest.mark.slow
def test_bad_records_strict_mode_stops_with_file_and_line(ray_cluster, bad_corpus, tiny_dream_dir, tmp_path):
    with pytest.raises(CorpusError) as single:
        encoder = _encoder(str(tiny_dream_dir))()
        encode_corpus(encoder, _reader(bad_corpus), tmp_path / "single", ALL, batch_size=8, sort_window=SORT_WINDOW)
    with pytest.raises(CorpusError) as distributed:
        _on_ray(tiny_dream_dir, bad_corpus, tmp_path / "ray", workers=1, block_size=8)
    assert str(distributed.value) == str(single.value)
    assert f"{bad_corpus}" in str(distributed.value) and "line 6" in str(distributed.value)


# -- without a cluster -----------------------------------------------------------------------------------------
def test_spilled_block_round_trips_and_belongs_to_its_run_only(tmp_path):
    block = _Block(3, start=16, end=33, digest="abc", ids=[["a", "b"], ["c"]])
    block.events = [0, SkippedRecord("f", 20, "json", "bad"), 1]
    batches = [
        {
            "dense": np.arange(6, dtype=np.float32).reshape(2, 3),
            "multi": [np.ones((2, 3), np.float32), np.zeros((1, 3), np.float32)],
            "impact": [{"wing": 3}, {"flow": 1, "ü": 2}],
            "tokens": {"real": 70, "computed": 82},
        },
        {"dense": np.ones((1, 3), np.float32), "multi": [np.full((4, 3), 2, np.float32)], "impact": [{"x": 9}]},
    ]
    store = _SpillStore(tmp_path / "spills", "settings-hash")
    store.save(block, batches)
    loaded = store.load(block, ALL)
    for expected, got in zip(batches, loaded, strict=True):
        np.testing.assert_array_equal(got["dense"], expected["dense"])
        assert [m.tolist() for m in got["multi"]] == [m.tolist() for m in expected["multi"]]
        assert got["impact"] == expected["impact"]
        assert got["tokens"] == expected.get("tokens")  # counted tokens survive a spill (None: not counted)
    assert _SpillStore(tmp_path / "spills", "other-settings").load(block, ALL) is None
    other_corpus = _Block(3, start=16, end=33, digest="changed", ids=block.ids)
    assert store.load(other_corpus, ALL) is None
    assert not list((tmp_path / "spills").glob("*.tmp"))


class _HungryEncoder:
    def encode_all(self, texts, titles=None, max_length=None, fp16=False):
        raise MemoryError("cannot allocate 3 GiB")


def test_out_of_memory_names_block_batch_size_and_a_hint():
    worker = BlockEncoder(_HungryEncoder)
    options = {"representations": ["dense"], "max_length": 512, "fp16": False, "batch_size": 64, "max_tokens": None}
    with pytest.raises(WorkerOutOfMemoryError) as error:
        worker.encode("block 7 (records 449..512 of the shard)", [(["d1"], ["text"], None)], options)
    message = str(error.value)
    assert "block 7 (records 449..512" in message and "batch size 64" in message and "--batch-size" in message


def test_without_ray_the_package_imports_and_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayUnavailableError, match=r"pyserini-diffretriever\[ray\]"):
        import_ray()
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import pyserini_diffretriever, pyserini_diffretriever.pipeline.distributed, pyserini_diffretriever.cli.encode"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env()).returncode == 0
    corpus = write_corpus(tmp_path / "c.jsonl", cranfield_like(3))
    argv = _cli_argv(tmp_path / "no-model", corpus, tmp_path / "o")
    from pyserini_diffretriever.cli import encode

    assert encode.main([*argv, "ray", "--workers", "2"]) == 1


def test_ray_options_are_checked():
    with pytest.raises(ValueError, match="workers >= 1"):
        RayOptions(workers=0)
    with pytest.raises(ValueError, match="gpus_per_worker"):
        RayOptions(gpus_per_worker=-1)


def test_cli_ray_group_is_checked(tmp_path, capsys):
    from pyserini_diffretriever.cli.encode import parse_args

    argv = ["input", "--corpus", "c.jsonl", "encoder", "--encoder", "m", "output", "--embeddings", "o"]
    args = parse_args([*argv, "ray", "--workers", "3", "--block-size", "64", "--address", "auto"])
    assert (args.ray.workers, args.ray.block_size, args.ray.address) == (3, 64, "auto")
    assert parse_args(argv).ray is None
    with pytest.raises(SystemExit) as stop:
        parse_args([*argv, "ray", "--workers", "0"])
    assert stop.value.code == 2 and "ray --workers must be >= 1" in capsys.readouterr().err

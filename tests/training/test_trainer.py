"""The training driver: round trip through the encoders, merged export, resume after SIGKILL, non-finite steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from pyserini_diffretriever.backbones.adapters import read_adapter
from pyserini_diffretriever.cli import encode as encode_cli
from pyserini_diffretriever.cli import train as train_cli
from pyserini_diffretriever.encoders import DiffRetrieverDocumentEncoder, DiffRetrieverModel
from pyserini_diffretriever.search import open_searcher
from pyserini_diffretriever.training import model as model_module
from pyserini_diffretriever.training import train

from .conftest import tiny_settings, write_groups

HERE = Path(__file__).resolve().parent
TEXTS = ["flutter of a heated wing panel", "shock wave boundary layer interaction in a supersonic nozzle"]


def _cosines(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    out = []
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        out.extend((x * y).sum(-1) / np.linalg.norm(x, axis=-1) / np.linalg.norm(y, axis=-1))
    return out


@pytest.fixture(scope="module")
def trained(tiny_dream_dir, tmp_path_factory):
    """One 3-step run with a merged export, shared by the round-trip tests."""
    root = tmp_path_factory.mktemp("trained")
    data = write_groups(root / "train.jsonl")
    return train(tiny_settings(tiny_dream_dir, data, root / "adapter", merge=True))


def test_the_adapter_folder_has_the_released_layout(trained):
    out = trained.adapter_dir
    assert trained.global_step == 3 and trained.skipped_steps == 0
    files = {p.name for p in out.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "retriever_config.json",
        "tokenizer_config.json",
    } <= files
    assert not {"model.safetensors", "model.safetensors.index.json"} & files
    retriever = json.loads((out / "retriever_config.json").read_text())
    assert (retriever["model_type"], retriever["n_gen_q_tokens"], retriever["n_gen_p_tokens"]) == ("dream", 2, 3)
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "FEATURE_EXTRACTION"
    assert all("lora_" in name for name in load_file(out / "adapter_model.safetensors"))


def test_trained_adapter_round_trips_through_the_encoders_and_the_merged_export(tiny_dream_dir, trained):
    out = trained.adapter_dir
    in_memory = DiffRetrieverModel(trained.model.loaded_backbone())
    expected = in_memory.encode_side(TEXTS, "passage", k=3, max_length=64)
    loaded = DiffRetrieverDocumentEncoder(tiny_dream_dir, adapter=str(out), representation="multi", max_length=64)
    assert loaded.k == 3  # the K the adapter was trained with (retriever_config.json)
    assert min(_cosines(expected.multi, loaded.encode(TEXTS))) >= 0.9999
    assert loaded.settings()["adapter_sha256"] == read_adapter(out).sha256
    alone = DiffRetrieverModel(out)  # base model taken from retriever_config.json
    assert min(_cosines(expected.multi, alone.encode_side(TEXTS, "passage", max_length=64).multi)) >= 0.9999
    merged = DiffRetrieverModel(trained.merged_dir).encode_side(TEXTS, "passage", k=3, max_length=64)
    assert min(_cosines(expected.multi, merged.multi)) >= 0.9999
    assert merged.impact == expected.impact
    base = DiffRetrieverModel(tiny_dream_dir).encode_side(TEXTS, "passage", k=3, max_length=64)
    assert min(_cosines(expected.multi, base.multi)) < 0.9999  # training changed the encodings


def test_encode_cli_and_open_searcher_use_the_adapter_recorded_in_the_manifest(tiny_dream_dir, trained, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "title": "", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    out = tmp_path / "enc"
    adapter = str(trained.adapter_dir)
    argv = (
        f"input --corpus {corpus} encoder --encoder {tiny_dream_dir} --adapter {adapter} --representation multi "
        f"--max-length 64 output --embeddings {out} --no-progress"
    ).split()
    assert encode_cli.main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    encoder = manifest["encoder"]
    assert encoder["adapter"] == str(trained.adapter_dir) and encoder["k"] == 3
    assert encoder["adapter_sha256"] == read_adapter(trained.adapter_dir).sha256
    assert manifest["query"]["k"] == 2  # the adapter's query K
    searcher = open_searcher(out, threads=1)
    settings = searcher.query_encoder.settings()
    assert (settings["adapter_sha256"], settings["k"]) == (encoder["adapter_sha256"], 2)
    hits = searcher.search("shock wave in a nozzle", k=2)
    assert {hit.docid for hit in hits} == {"0", "1"}


def _adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def test_resume_after_sigkill_mid_epoch_reaches_the_uninterrupted_adapter(tiny_dream_dir, groups_file, tmp_path):
    # 8 queries, 2 per step: 4 steps per epoch, 2 epochs; killed right after the checkpoint of step 6 (epoch 2)
    common = (
        f"--model {tiny_dream_dir} --train-data {groups_file} --k-query 2 --k-passage 3 --max-length 64 "
        "--n-negatives 2 --per-device-batch-size 2 --epochs 2 --learning-rate 1e-3 --save-steps 3 --device cpu"
    ).split()
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.run(
        [sys.executable, str(HERE / "train_child.py"), "--kill-at", "6", "--", *common, "--output-dir", str(killed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    assert not (killed / "adapter_model.safetensors").exists()
    assert (killed / "checkpoints" / "checkpoint-6").is_dir()
    assert train_cli.main([*common, "--output-dir", str(killed), "--resume"]) == 0
    straight = tmp_path / "straight"
    assert train_cli.main([*common, "--output-dir", str(straight)]) == 0
    resumed, uninterrupted = _adapter(killed), _adapter(straight)
    assert resumed.keys() == uninterrupted.keys()
    assert max(float((resumed[k] - uninterrupted[k]).abs().max()) for k in resumed) <= 1e-6
    summary = json.loads((killed / "training_summary.json").read_text())
    assert summary["global_step"] == 8


def test_resume_and_reuse_of_an_output_folder_are_checked(tiny_dream_dir, groups_file, tmp_path, caplog):
    argv = ["--model", str(tiny_dream_dir), "--train-data", str(groups_file), "--output-dir", str(tmp_path / "o")]
    assert train_cli.main([*argv, "--resume", "--device", "cpu"]) == 1
    assert "no checkpoint-* folder" in caplog.text
    (tmp_path / "o" / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    assert train_cli.main([*argv, "--device", "cpu"]) == 1
    assert "pass --resume" in caplog.text
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query_id": "1", "query": "q", "positive_passages": []}\n')
    assert train_cli.main([*argv[:2], "--train-data", str(bad), "--output-dir", str(tmp_path / "p")]) == 1
    assert f"{bad}:1:" in caplog.text


class _Snapshots(TrainerCallback):
    def __init__(self) -> None:
        self.by_step: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.by_step[state.global_step] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_a_non_finite_loss_skips_the_optimizer_step(tiny_dream_dir, groups_file, tmp_path, monkeypatch, caplog):
    original, calls = model_module.contrastive_loss, []

    def nan_on_second_call(*args, **kwargs):
        parts = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(model_module, "contrastive_loss", nan_on_second_call)
    snapshots = _Snapshots()
    result = train(tiny_settings(tiny_dream_dir, groups_file, tmp_path / "o", lora_dropout=0.0), callbacks=[snapshots])
    assert result.skipped_steps == 1 and "step 2: non-finite loss" in caplog.text
    steps = snapshots.by_step
    assert all(torch.equal(steps[1][n], steps[2][n]) for n in steps[1])  # step 2 changed nothing
    assert any(not torch.equal(steps[2][n], steps[3][n]) for n in steps[2])  # step 3 trained again


def test_the_autoregressive_baseline_trains_and_round_trips(groups_file, tmp_path):
    from pyserini_diffretriever.fixtures import write_tiny_qwen2

    base = write_tiny_qwen2(tmp_path / "qwen2", num_layers=1)
    settings = tiny_settings(base, groups_file, tmp_path / "adapter", k_passage=2, max_steps=2, merge=True)
    result = train(settings)
    assert result.skipped_steps == 0 and result.final_loss is not None and result.final_loss > 0
    expected = DiffRetrieverModel(result.model.loaded_backbone()).encode_side(TEXTS, "passage", k=2, max_length=64)
    loaded = DiffRetrieverModel(result.adapter_dir).encode_side(TEXTS, "passage", max_length=64)  # K=2 from config
    assert min(_cosines(expected.multi, loaded.multi)) >= 0.9999
    merged = DiffRetrieverModel(result.merged_dir).encode_side(TEXTS, "passage", k=2, max_length=64)
    assert min(_cosines(expected.multi, merged.multi)) >= 0.9999

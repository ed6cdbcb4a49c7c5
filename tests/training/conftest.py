"""Fixtures for the fine-tuning tests: a small Tevatron file of synthetic overlap groups and training settings."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pyserini_diffretriever.training import TrainingSettings

WORDS = [
    "wing",
    "flutter",
    "heat",
    "boundary",
    "layer",
    "shock",
    "wave",
    "pressure",
    "supersonic",
    "flow",
    "nozzle",
    "blade",
    "turbine",
    "cylinder",
    "plate",
    "vortex",
    "drag",
    "lift",
    "panel",
    "buckling",
    "jet",
    "mixing",
    "stagnation",
    "transition",
    "laminar",
]


def write_groups(path: Path, n_queries: int = 8, n_negatives: int = 4, seed: int = 0) -> Path:
    """Tevatron JSONL: each positive shares the query's words, negatives are random words."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n_queries):
            query = rng.sample(WORDS, 3)
            positive = {"docid": f"p{i}", "title": "", "text": " ".join(query + rng.sample(WORDS, 3))}
            negatives = [
                {"docid": f"n{i}-{j}", "title": rng.choice(WORDS), "text": " ".join(rng.sample(WORDS, 5))}
                for j in range(n_negatives)
            ]
            record = {
                "query_id": str(i),
                "query": " ".join(query),
                "positive_passages": [positive],
                "negative_passages": negatives,
            }
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture
def groups_file(tmp_path) -> Path:
    return write_groups(tmp_path / "train.jsonl")


def tiny_settings(model_dir: Path, data: Path, out: Path, **changes) -> TrainingSettings:
    """Small, fast CPU settings (K_q=2, K_p=3, 2 negatives, 2 queries per step, fp32)."""
    values = dict(
        model=str(model_dir),
        train_data=str(data),
        output_dir=str(out),
        k_query=2,
        k_passage=3,
        max_length=64,
        n_negatives=2,
        per_device_batch_size=2,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        max_steps=3,
        save_steps=100,
        logging_steps=1,
        device="cpu",
    )
    values.update(changes)
    return TrainingSettings(**values)

"""The trainable retriever's inputs: K per side resolved by the backbone registry's one rule."""

from __future__ import annotations

import dataclasses

from pyserini_diffretriever.backbones import load_backbone

from .conftest import tiny_settings


def _with_adapter_k(backbone, k: dict[str, int]):
    spec = dataclasses.replace(backbone.spec, extra={**backbone.spec.extra, "adapter_k": k})
    return dataclasses.replace(backbone, spec=spec)


def test_training_takes_the_k_an_adapter_records_unless_k_is_given(tiny_dream_dir, tmp_path):
    from pyserini_diffretriever.training import DiffRetrieverForTraining

    data, out = tmp_path / "unused.jsonl", tmp_path / "out"
    backbone = _with_adapter_k(load_backbone(tiny_dream_dir), {"query": 1, "passage": 2})
    recorded = DiffRetrieverForTraining(
        backbone, tiny_settings(tiny_dream_dir, data, out, k_query=None, k_passage=None)
    )
    assert (recorded.builders["query"].k, recorded.builders["passage"].k) == (1, 2)
    given = DiffRetrieverForTraining(
        _with_adapter_k(load_backbone(tiny_dream_dir), {"query": 1, "passage": 2}),
        tiny_settings(tiny_dream_dir, data, out, k_query=3, k_passage=None),
    )
    assert (given.builders["query"].k, given.builders["passage"].k) == (3, 2)
    plain = DiffRetrieverForTraining(
        load_backbone(tiny_dream_dir), tiny_settings(tiny_dream_dir, data, out, k_query=None, k_passage=None)
    )
    assert (plain.builders["query"].k, plain.builders["passage"].k) == (4, 16)  # the registry's Dream defaults

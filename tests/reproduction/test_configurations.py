"""The configuration table: groups, order, runs per configuration, and the error for an unknown name."""

from __future__ import annotations

import pytest

from pyserini_diffretriever.reproduction.configurations import (
    CONFIGURATION_GROUPS,
    CONFIGURATIONS,
    UnknownConfigurationError,
    resolve_configurations,
)


def test_groups_expand_in_order_without_duplicates() -> None:
    chosen = resolve_configurations(["dream-zs-multi", "zero-shot"])
    names = [c.name for c in chosen]
    assert names[0] == "dream-zs-multi"
    assert sorted(names) == sorted(CONFIGURATION_GROUPS["zero-shot"])
    assert len(names) == len(set(names))


def test_every_group_member_exists_and_fine_tuned_ones_name_released_adapters() -> None:
    for members in CONFIGURATION_GROUPS.values():
        assert set(members) <= set(CONFIGURATIONS)
    for name in CONFIGURATION_GROUPS["fine-tuned"]:
        assert CONFIGURATIONS[name].adapter.startswith("ielabgroup/diffretriever-")
    assert all(CONFIGURATIONS[name].adapter is None for name in CONFIGURATION_GROUPS["zero-shot"])


def test_paper_k_and_figures() -> None:
    dream = CONFIGURATIONS["dream-zs-multi"]
    assert (dream.k_query, dream.k_passage, dream.prompt, dream.paper_ndcg10) == (4, 16, "few", 0.476)
    llada = CONFIGURATIONS["llada-zs-multi"]
    assert (llada.k_query, llada.k_passage, llada.paper_ndcg10) == (4, 4, 0.540)
    assert CONFIGURATIONS["dream-zs-single"].prompt == "one"
    assert CONFIGURATIONS["dream-ft-multi"].paper_ndcg10 == 0.671


def test_runs_single_vs_multi() -> None:
    single, multi = CONFIGURATIONS["dream-zs-single"], CONFIGURATIONS["dream-zs-multi"]
    assert single.runs == ("dense", "impact", "hybrid", "hybrid+bm25")
    assert single.hybrid_sides == ("dense", "impact")
    assert multi.runs == ("dense", "multi", "impact", "hybrid", "hybrid+bm25")
    assert multi.hybrid_sides == ("multi", "impact")
    assert CONFIGURATIONS["dream-ft-single"].models == (
        "Dream-org/Dream-v0-Instruct-7B",
        "ielabgroup/diffretriever-dream-7b-single",
    )


def test_unknown_configuration_lists_the_known_names() -> None:
    with pytest.raises(UnknownConfigurationError, match="unknown configuration 'dream-zero'.*dream-zs-multi.*groups"):
        resolve_configurations(["dream-zero"])

"""Length-bucketed, token-budget batch plans (representation.bucketing): pure, no model."""

from __future__ import annotations

import random

import pytest

from pyserini_diffretriever.representation.bucketing import TokenBudgetError, TokenCount, batch_cost, plan_batches


def _lengths(n: int = 200, seed: int = 3) -> list[int]:
    rng = random.Random(seed)
    return [int(rng.lognormvariate(4.3, 0.5)) + 30 for _ in range(n)]


def _cost(lengths, plan) -> TokenCount:
    return sum((batch_cost([lengths[i] for i in batch]) for batch in plan), TokenCount())


def test_every_row_once_longest_first_and_capped():
    lengths = _lengths()
    plan = plan_batches(lengths, batch_size=16)
    assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
    assert all(len(batch) <= 16 for batch in plan) and all(len(batch) == 16 for batch in plan[:-1])
    flat = [lengths[i] for batch in plan for i in batch]
    assert flat == sorted(lengths, reverse=True)


def test_sorting_cuts_padding_and_input_order_keeps_it():
    lengths = _lengths(2000)
    sorted_cost = _cost(lengths, plan_batches(lengths, 32))
    corpus_cost = _cost(lengths, plan_batches(lengths, 32, sort=False))
    assert sorted_cost.real == corpus_cost.real == sum(lengths)
    assert sorted_cost.ratio < 1.1 < corpus_cost.ratio
    assert plan_batches(lengths, 32, sort=False)[0] == list(range(32))


def test_ties_keep_input_order_so_the_plan_is_deterministic():
    assert plan_batches([5, 7, 5, 7, 5], batch_size=2) == [[1, 3], [0, 2], [4]]


@pytest.mark.parametrize("budget", [300, 512, 1500])
def test_token_budget_is_respected_and_batch_size_stays_a_cap(budget):
    lengths = _lengths()
    plan = plan_batches(lengths, batch_size=8, max_tokens=budget)
    assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
    for batch in plan:
        assert len(batch) <= 8 and len(batch) * max(lengths[i] for i in batch) <= budget
    sizes = [len(batch) for batch in plan]
    assert sizes[0] <= sizes[-2]  # long rows first, in smaller batches: sizes follow lengths


def test_budget_below_one_row_is_refused_naming_it():
    with pytest.raises(TokenBudgetError, match=r"cran2 is 90 tokens long .* max_tokens=80"):
        plan_batches([40, 90, 20], batch_size=4, max_tokens=80, names=["cran1", "cran2", "cran3"])
    with pytest.raises(TokenBudgetError, match="text 1 is 90"):
        plan_batches([40, 90], batch_size=4, max_tokens=80)


def test_bad_caps_are_refused():
    with pytest.raises(ValueError, match="batch_size=0"):
        plan_batches([1], 0)
    with pytest.raises(ValueError, match="max_tokens=0"):
        plan_batches([1], 1, max_tokens=0)


def test_token_counts_add_and_round_trip():
    total = TokenCount(10, 12) + batch_cost([3, 5])
    assert total == TokenCount(18, 22) and TokenCount.from_record(total.record()) == total
    assert TokenCount().ratio == 1.0 and TokenCount.from_record(None) == TokenCount()

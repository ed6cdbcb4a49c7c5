"""The result table from step records: averages, the paper figure and difference, composed costs, empty cells."""

from __future__ import annotations

import csv
import io
import json

import pytest

from pyserini_diffretriever.reproduction.configurations import CONFIGURATIONS
from pyserini_diffretriever.reproduction.datasets import BEIR_7
from pyserini_diffretriever.reproduction.steps import StepRecord
from pyserini_diffretriever.reproduction.table import build_table

MULTI = CONFIGURATIONS["dream-zs-multi"]


def _record(step, seconds=1.0, **result):
    return StepRecord(step=step, key={}, outputs=[], status="done", seconds=seconds, result=result)


def _records(datasets, ndcg=0.5):
    records = {}
    for number, d in enumerate(datasets):
        records[f"{d}/bm25/index"] = _record(f"{d}/bm25/index", index_bytes=100)
        records[f"{d}/bm25/search"] = _record(f"{d}/bm25/search", queries=10, search_seconds=0.1)
        records[f"{d}/bm25/eval-bm25"] = _record(f"{d}/bm25/eval-bm25", ndcg_cut_10=0.4, recall_100=0.7)
        records[f"{d}/dream-zs-multi/encode"] = _record(f"{d}/dream-zs-multi/encode", seconds=60.0 + number)
        for rep, size in (("dense", 1000), ("multi", 16000), ("impact", 500)):
            step = f"{d}/dream-zs-multi/search-{rep}"
            records[step] = _record(step, queries=10, search_seconds=0.2, index_bytes=size)
        for fused in ("hybrid", "hybrid+bm25"):
            records[f"{d}/dream-zs-multi/{fused}"] = _record(f"{d}/dream-zs-multi/{fused}", fusion_seconds=0.05)
        for run in MULTI.runs:
            step = f"{d}/dream-zs-multi/eval-{run}"
            records[step] = _record(step, ndcg_cut_10=ndcg + 0.01 * number, recall_100=0.9)
    return records


def test_beir7_average_paper_figure_and_difference() -> None:
    table = build_table(_records(BEIR_7), list(BEIR_7), [MULTI])
    assert table.average_label == "BEIR-7"
    rows = {(r.configuration, r.run): r for r in table.rows}
    assert list(rows) == [("bm25", "bm25")] + [("dream-zs-multi", run) for run in MULTI.runs]
    hybrid = rows["dream-zs-multi", "hybrid"]
    assert hybrid.average["ndcg_cut_10"] == pytest.approx(0.5 + 0.03)
    assert hybrid.paper_ndcg_cut_10 == 0.476
    assert hybrid.difference == pytest.approx(0.53 - 0.476)
    assert rows["bm25", "bm25"].difference == pytest.approx(0.4 - 0.472)
    assert rows["dream-zs-multi", "dense"].paper_ndcg_cut_10 is None
    # costs: encode summed over datasets; hybrid = multi + impact (+ fusion); with BM25 its index and search too
    assert hybrid.encode_seconds == pytest.approx(sum(60.0 + i for i in range(7)))
    assert hybrid.index_bytes == 7 * (16000 + 500)
    assert hybrid.search_ms_per_query == pytest.approx(1000 * (0.2 + 0.2 + 0.05) / 10)
    with_bm25 = rows["dream-zs-multi", "hybrid+bm25"]
    assert with_bm25.index_bytes == 7 * (16000 + 500 + 100)
    assert with_bm25.search_ms_per_query == pytest.approx(1000 * (0.45 + 0.1 + 0.05) / 10)


def test_other_datasets_get_a_mean_and_no_difference_and_missing_cells_stay_empty() -> None:
    records = _records(["a", "b"])
    del records["b/dream-zs-multi/eval-impact"]
    table = build_table(records, ["a", "b"], [MULTI])
    assert table.average_label == "mean"
    rows = {(r.configuration, r.run): r for r in table.rows}
    assert rows["dream-zs-multi", "hybrid"].difference is None
    assert rows["dream-zs-multi", "impact"].average["ndcg_cut_10"] is None
    parsed = list(csv.reader(io.StringIO(table.csv())))
    assert parsed[0] == table.columns and len(parsed) == 1 + len(table.rows)
    impact = next(row for row in parsed if row[1] == "impact")
    assert impact[table.columns.index("b nDCG@10")] == "" and impact[table.columns.index("a nDCG@10")] == "0.5000"
    markdown = table.markdown().splitlines()
    header = next(line for line in markdown if line.startswith("| configuration"))
    body = [line for line in markdown if line.startswith("| dream") or line.startswith("| bm25")]
    assert len(body) == len(table.rows)
    assert all(line.count("|") == header.count("|") for line in body)
    assert json.loads(json.dumps(table.to_json()))["average"] == "mean"

"""The reproduction's one table, in Markdown, CSV and JSON, built from the step manifests alone.

One row per run: BM25 first, then every run of every configuration (``dense``, ``multi``, ``impact``, ``hybrid``,
``hybrid+bm25``). Columns: NDCG@10 and R@100 per dataset, their average over the datasets (labelled ``BEIR-7``
when the datasets are exactly the paper's seven, else ``mean``), the paper's BEIR-7 figure beside ours with the
difference (only for a BEIR-7 average: a figure over seven datasets says nothing about fewer), and the costs:

* ``encode s`` -- wall seconds of the configuration's encoding, summed over datasets (model loading included);
* ``index bytes`` -- bytes of the folders the run searches, summed over datasets (hybrid: both sides; with BM25:
  the BM25 index too);
* ``search ms/q`` -- search wall time per query, query encoding included, model and index loading excluded
  (hybrid: both sides and the fusion).

A missing value (a step that has not finished) is an empty cell, never a zero.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .configurations import BM25, BM25_PAPER_NDCG10, Configuration
from .datasets import BEIR_7
from .evaluation import METRICS
from .steps import StepRecord

__all__ = ["ResultTable", "Row", "build_table"]


@dataclass
class Row:
    """One run of the table (see the module docstring for the columns)."""

    configuration: str
    run: str
    metrics: dict[str, dict[str, float | None]]  # dataset -> {ndcg_cut_10, recall_100}
    average: dict[str, float | None]
    paper_ndcg_cut_10: float | None
    difference: float | None
    encode_seconds: float | None
    index_bytes: int | None
    search_ms_per_query: float | None
    per_dataset_costs: dict[str, dict[str, float | int | None]] = field(default_factory=dict)


@dataclass
class ResultTable:
    """All rows plus what the reader needs to interpret them."""

    datasets: list[str]
    average_label: str
    rows: list[Row]
    notes: list[str]
    settings: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        """Column names shared by the Markdown and CSV forms."""
        names = ["configuration", "run"]
        for dataset in self.datasets:
            names += [f"{dataset} {label}" for label in METRICS.values()]
        names += [f"{self.average_label} {label}" for label in METRICS.values()]
        names += ["paper nDCG@10", "difference", "encode s", "index bytes", "search ms/q"]
        return names

    def _cells(self, row: Row, markdown: bool) -> list[str]:
        def number(value: float | None, digits: int = 4) -> str:
            return "" if value is None else f"{value:.{digits}f}"

        cells = [row.configuration, row.run]
        for dataset in self.datasets:
            cells += [number(row.metrics.get(dataset, {}).get(metric)) for metric in METRICS]
        cells += [number(row.average.get(metric)) for metric in METRICS]
        cells += [number(row.paper_ndcg_cut_10, 3), "" if row.difference is None else f"{row.difference:+.3f}"]
        cells += [number(row.encode_seconds, 1)]
        if row.index_bytes is None:
            cells.append("")
        else:
            cells.append(_human_bytes(row.index_bytes) if markdown else str(row.index_bytes))
        cells.append(number(row.search_ms_per_query, 2))
        return cells

    def markdown(self) -> str:
        lines = [
            "# DiffRetriever reproduction",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---" if i < 2 else "---:" for i in range(len(self.columns))) + "|",
        ]
        lines += ["| " + " | ".join(self._cells(row, markdown=True)) + " |" for row in self.rows]
        lines += ["", *[f"- {note}" for note in self.notes], ""]
        return "\n".join(lines)

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(self._cells(row, markdown=False))
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {
            "datasets": self.datasets,
            "average": self.average_label,
            "metrics": METRICS,
            "rows": [asdict(row) for row in self.rows],
            "notes": self.notes,
            "settings": self.settings,
        }

    def write(self, markdown: Path, csv_path: Path, json_path: Path) -> None:
        markdown.write_text(self.markdown(), encoding="utf-8")
        csv_path.write_text(self.csv(), encoding="utf-8")
        json_path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")


def _human_bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover


def _result(records: Mapping[str, StepRecord], step: str, name: str) -> Any:
    record = records.get(step)
    return None if record is None else record.result.get(name)


def _sum(values: Sequence[float | int | None]) -> float | int | None:
    return None if not values or any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


@dataclass
class _Cost:
    seconds: float | None
    queries: int | None
    index_bytes: int | None


def _run_cost(
    records: Mapping[str, StepRecord], dataset: str, owner: str, run: str, config: Configuration | None
) -> _Cost:
    """Search seconds, queries and index bytes of one run on one dataset (composite runs add their parts)."""
    if owner == BM25:
        return _Cost(
            _result(records, f"{dataset}/{BM25}/search", "search_seconds"),
            _result(records, f"{dataset}/{BM25}/search", "queries"),
            _result(records, f"{dataset}/{BM25}/index", "index_bytes"),
        )
    assert config is not None
    if run in config.representations:
        step = f"{dataset}/{owner}/search-{run}"
        return _Cost(
            _result(records, step, "search_seconds"),
            _result(records, step, "queries"),
            _result(records, step, "index_bytes"),
        )
    if run == "hybrid":
        parts = [_run_cost(records, dataset, owner, side, config) for side in config.hybrid_sides]
        fusion = _result(records, f"{dataset}/{owner}/hybrid", "fusion_seconds")
        return _Cost(
            _sum([p.seconds for p in parts] + [fusion]),
            parts[0].queries,
            _sum([p.index_bytes for p in parts]),  # type: ignore[arg-type]
        )
    hybrid = _run_cost(records, dataset, owner, "hybrid", config)
    bm25 = _run_cost(records, dataset, BM25, BM25, None)
    fusion = _result(records, f"{dataset}/{owner}/hybrid+bm25", "fusion_seconds")
    return _Cost(
        _sum([hybrid.seconds, bm25.seconds, fusion]),
        hybrid.queries,
        _sum([hybrid.index_bytes, bm25.index_bytes]),  # type: ignore[arg-type]
    )


def _row(
    records: Mapping[str, StepRecord],
    datasets: Sequence[str],
    owner: str,
    run: str,
    config: Configuration | None,
    beir7: bool,
) -> Row:
    metrics: dict[str, dict[str, float | None]] = {}
    costs: dict[str, dict[str, float | int | None]] = {}
    for dataset in datasets:
        record = records.get(f"{dataset}/{owner}/eval-{run}")
        metrics[dataset] = {m: None if record is None else record.result.get(m) for m in METRICS}
        cost = _run_cost(records, dataset, owner, run, config)
        encode = None if config is None else _result_seconds(records, f"{dataset}/{owner}/encode")
        costs[dataset] = {
            "encode_seconds": encode,
            "index_bytes": cost.index_bytes,
            "search_seconds": cost.seconds,
            "queries": cost.queries,
        }
    average: dict[str, float | None] = {}
    for metric in METRICS:
        values = [metrics[d][metric] for d in datasets]
        average[metric] = None if any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type, misc]
    paper = None
    if owner == BM25:
        paper = BM25_PAPER_NDCG10
    elif run == "hybrid" and config is not None:
        paper = config.paper_ndcg10
    ours = average["ndcg_cut_10"]
    difference = ours - paper if beir7 and paper is not None and ours is not None else None
    seconds = _sum([costs[d]["search_seconds"] for d in datasets])
    queries = _sum([costs[d]["queries"] for d in datasets])
    return Row(
        configuration=owner,
        run=run,
        metrics=metrics,
        average=average,
        paper_ndcg_cut_10=paper,
        difference=difference,
        encode_seconds=None if config is None else _sum([costs[d]["encode_seconds"] for d in datasets]),
        index_bytes=_sum([costs[d]["index_bytes"] for d in datasets]),  # type: ignore[arg-type]
        search_ms_per_query=None if seconds is None or not queries else 1000.0 * seconds / queries,
        per_dataset_costs=costs,
    )


def _result_seconds(records: Mapping[str, StepRecord], step: str) -> float | None:
    record = records.get(step)
    return None if record is None else record.seconds


def build_table(
    records: Mapping[str, StepRecord],
    datasets: Sequence[str],
    configurations: Sequence[Configuration],
    settings: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> ResultTable:
    """The table from finished step records (:meth:`Reproduction.records`); missing steps give empty cells."""
    beir7 = sorted(datasets) == sorted(BEIR_7)
    rows = [_row(records, datasets, BM25, BM25, None, beir7)]
    for config in configurations:
        rows += [_row(records, datasets, config.name, run, config, beir7) for run in config.runs]
    label = "BEIR-7" if beir7 else "mean"
    all_notes = [
        "nDCG@10 and R@100 from Pyserini's trec_eval -c (every judged query counts; no hits = 0).",
        "paper nDCG@10: BEIR-7 averages read off the reference README's plot (+-0.002), placed beside each "
        "configuration's hybrid run (min-max fusion of dense/multi with impact) and BM25.",
        "difference = ours - paper; "
        + ("shown for the BEIR-7 average." if beir7 else "left empty: the datasets are not the BEIR-7 set."),
        "encode s: encoding wall time summed over datasets (model loading included); search ms/q: search wall "
        "time per query with query encoding, without model and index loading; index bytes: the folders searched.",
        *notes,
    ]
    return ResultTable(list(datasets), label, rows, all_notes, dict(settings or {}))

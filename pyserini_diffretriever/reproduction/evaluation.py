"""Scoring and fusing run files with Pyserini's own tools: ``trec_eval`` and ``reciprocal_rank_fusion``.

Why Pyserini's: the numbers must be the ones a Pyserini user gets from ``python -m pyserini.eval.trec_eval -c``
and ``python -m pyserini.fusion --method rrf``, so that they sit next to Pyserini's published baselines.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

__all__ = ["METRICS", "EvaluationError", "reciprocal_rank_fusion", "trec_eval", "trec_eval_command"]

METRICS: dict[str, str] = {"ndcg_cut_10": "nDCG@10", "recall_100": "R@100"}
"""trec_eval measure (as it prints it) -> table label."""

_MEASURES = ("ndcg_cut.10", "recall.100")


class EvaluationError(RuntimeError):
    """trec_eval did not print a measure that was asked for (its output is in the message)."""


def trec_eval_command(qrels: Path, run: Path) -> list[str]:
    """The Pyserini command :func:`trec_eval` runs (``-c``: queries without hits count as 0)."""
    measures = [part for measure in _MEASURES for part in ("-m", measure)]
    return ["python", "-m", "pyserini.eval.trec_eval", "-c", *measures, str(qrels), str(run)]


def trec_eval(qrels: Path, run: Path) -> dict[str, float]:
    """NDCG@10 and R@100 of ``run`` over every query of ``qrels`` (Pyserini's trec_eval, in this process).

    Raises
    ------
    FileNotFoundError
        When the qrels or run file does not exist (Pyserini's function would exit the process).
    EvaluationError
        When trec_eval's output lacks a measure.
    """
    for path in (qrels, run):
        if not Path(path).is_file():
            raise FileNotFoundError(f"trec_eval: {path} does not exist")
    from .. import _java

    _java.prepare_jvm()
    from pyserini.eval.trec_eval import trec_eval as pyserini_trec_eval

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        pyserini_trec_eval(["trec_eval", *trec_eval_command(qrels, run)[4:]])
    values: dict[str, float] = {}
    for line in buffer.getvalue().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "all":
            values[parts[0]] = float(parts[2])
    missing = [name for name in METRICS if name not in values]
    if missing:
        raise EvaluationError(f"trec_eval printed no {missing} for {run}:\n{buffer.getvalue()}")
    return {name: values[name] for name in METRICS}


def reciprocal_rank_fusion(
    runs: list[Path], output: Path, *, tag: str, rrf_k: int = 60, depth: int = 1000, k: int = 1000
) -> Path:
    """RRF of run files with Pyserini's ``reciprocal_rank_fusion`` (= ``python -m pyserini.fusion --method rrf``)."""
    from pyserini.fusion import reciprocal_rank_fusion as pyserini_rrf
    from pyserini.trectools import TrecRun

    fused = pyserini_rrf([TrecRun(str(path)) for path in runs], rrf_k=rrf_k, depth=depth, k=k)
    tmp = output.with_name(output.name + ".tmp")
    fused.save_to_txt(str(tmp), tag=tag)
    os.replace(tmp, output)
    return output

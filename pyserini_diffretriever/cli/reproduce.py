"""``python -m pyserini_diffretriever.reproduce``: the paper's BEIR table, next to Anserini's BM25, in one command.

For every dataset x configuration: encode (one pass, every representation, resumable), index, search, the
paper's hybrid fusion, RRF with Anserini's BM25 flat run of the same corpus, and Pyserini's trec_eval (NDCG@10,
R@100); then one table in WORK/results.md, .csv and .json::

    python -m pyserini_diffretriever.reproduce --beir data/beir --configs paper --work runs/beir \\
        --device cuda:0 --dtype bfloat16 --batch-size 64

Datasets are BEIR folders (corpus.jsonl, queries.jsonl, qrels/test.tsv): ``--beir DIR`` takes the seven BEIR-7
folders under DIR, ``--dataset NAME=FOLDER`` any other. Missing queries or qrels of a BEIR dataset are fetched as
Pyserini's ``beir-v1.0.0-NAME-test`` topics and qrels. Configurations (``--list``): the backbones zero-shot and the
released ielabgroup adapters, single (K = 1) and multi; groups ``paper``, ``zero-shot``, ``fine-tuned``, ``all``.
``--model HUB_ID=DIR`` reads a checkpoint from a local folder instead of the Hugging Face cache.

Rerunning the same command continues where it stopped: finished steps are recognised by their manifests
(WORK/steps) and not redone. The table is also written after a failed or interrupted run (unfinished steps are
empty cells). ``--dry-run`` prints every command and an estimate of the GPU time.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..reproduction.configurations import (
    CONFIGURATION_GROUPS,
    CONFIGURATIONS,
    UnknownConfigurationError,
    resolve_configurations,
)
from ..reproduction.datasets import (
    BEIR_7,
    Dataset,
    DatasetError,
    MissingDatasetError,
    find_dataset,
    parse_dataset_spec,
)
from ..reproduction.pipeline import MissingModelError, Reproduction, ReproductionSettings, check_models
from ..reproduction.steps import StepFailedError, WorkFolderLockedError, lock_work_folder
from . import configure_logging

logger = logging.getLogger(__name__)

PROGRAM = "python -m pyserini_diffretriever.reproduce"


def build_parser() -> argparse.ArgumentParser:
    text = __doc__.replace("``", "")
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=text.split("\n", 1)[0].split(": ", 1)[1],
        epilog=text.split("\n", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to run")
    what.add_argument("--beir", metavar="DIR", help=f"folder holding the BEIR-7 folders ({', '.join(BEIR_7)})")
    what.add_argument(
        "--dataset", action="append", default=[], metavar="NAME=FOLDER", help="a BEIR-format folder (repeatable)"
    )
    what.add_argument("--split", default="test", help="qrels split: qrels/SPLIT.tsv (default test)")
    what.add_argument(
        "--configs",
        nargs="+",
        default=["paper"],
        metavar="NAME",
        help="configurations or groups (default: paper; see --list)",
    )
    what.add_argument("--work", help="work folder: indexes, runs, step manifests and results.{md,csv,json}")
    what.add_argument("--list", action="store_true", help="list the configurations and groups, then exit")
    models = parser.add_argument_group("models")
    models.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="HUB_ID=DIR",
        help="read this checkpoint or adapter from a local folder (repeatable)",
    )
    models.add_argument(
        "--download", action="store_true", help="fetch checkpoints missing from the Hugging Face cache during the run"
    )
    run = parser.add_argument_group("running")
    run.add_argument("--device", default="cuda:0", help="cpu or cuda[:N] (default cuda:0)")
    run.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"), help="weight dtype")
    run.add_argument("--batch-size", type=int, default=16, help="passages / queries per forward pass (default 16)")
    run.add_argument("--search-batch-size", type=int, default=64, help="queries per batch_search call (default 64)")
    run.add_argument("--max-length", type=int, default=512, help="prompt + passage token budget (default 512)")
    run.add_argument("--query-max-length", type=int, default=None, help="query token budget (default: encoder's)")
    run.add_argument("--threads", type=int, default=1, help="indexing and search threads (default 1)")
    run.add_argument("--hits", type=int, default=1000, help="hits per query and run (default 1000)")
    run.add_argument(
        "--remove-query",
        action="store_true",
        help="drop hits whose docid equals the qid, in every run (Pyserini's BEIR runs do; the paper does not)",
    )
    run.add_argument("--progress", action="store_true", help="show the encoder's progress bar")
    dry = parser.add_argument_group("dry run")
    dry.add_argument("--dry-run", action="store_true", help="print the commands and a GPU time estimate; run nothing")
    dry.add_argument("--seconds-per-token", type=float, default=None, help="encoding cost per token (given)")
    dry.add_argument("--seconds-per-text", type=float, default=None, help="encoding cost per passage (given)")
    dry.add_argument(
        "--measure-cost", type=int, default=None, metavar="N", help="measure the cost on N passages with each model"
    )
    dry.add_argument("--count-sample", type=int, default=20_000, help="passages tokenised per corpus (default 20000)")
    return parser


def _list() -> str:
    lines = ["configurations:"]
    for name, config in CONFIGURATIONS.items():
        lines.append(f"  {name:<16} {config.description}; paper BEIR-7 nDCG@10 {config.paper_ndcg10:.3f}")
    lines.append("groups:")
    lines += [f"  {name:<16} {' '.join(members)}" for name, members in CONFIGURATION_GROUPS.items()]
    return "\n".join(lines)


def _pairs(values: Sequence[str], option: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            parser.error(f"{option} expects HUB_ID=DIR, got {value!r}")
        pairs[key] = path
    return pairs


def _datasets(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Dataset]:
    datasets = [Dataset(name, Path(args.beir).expanduser() / name, args.split) for name in BEIR_7] if args.beir else []
    try:
        datasets += [parse_dataset_spec(spec, args.split) for spec in args.dataset]
    except DatasetError as error:
        parser.error(str(error))
    if not datasets:
        parser.error("no dataset: give --beir DIR and/or --dataset NAME=FOLDER")
    names = [d.name for d in datasets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        parser.error(f"dataset name(s) given twice: {', '.join(repeated)}")
    return datasets


def _check_values(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    for name in ("batch_size", "search_batch_size", "max_length", "query_max_length", "threads", "hits"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1 (got {value})")
    if args.measure_cost is not None and args.measure_cost < 1:
        parser.error("--measure-cost must be >= 1")


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ReproductionSettings:
    return ReproductionSettings(
        work=Path(args.work).expanduser(),
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        search_batch_size=args.search_batch_size,
        max_length=args.max_length,
        query_max_length=args.query_max_length,
        threads=args.threads,
        hits=args.hits,
        depth=args.hits,
        remove_query=args.remove_query,
        models=_pairs(args.model, "--model", parser),
        download=args.download,
        progress=args.progress,
    )


def dry_run(reproduction: Reproduction, args: argparse.Namespace) -> None:
    """Print the steps' commands, then the GPU time estimate (module docstring of reproduction.estimate)."""
    from ..reproduction import estimate

    settings = reproduction.settings
    print(
        f"# {len(reproduction.datasets)} dataset(s) x {len(reproduction.configurations)} configuration(s); "
        f"work folder {settings.work}"
    )
    for step in reproduction.plan():
        done = reproduction.log.finished(step.id, step.key, step.outputs) is not None
        print(f"\n# [{step.id}]{' (done)' if done else ''}{' (GPU)' if step.gpu else ''}\n{step.command}")
    print("\n# GPU time estimate (encoding)")
    costs: dict[str, estimate.Cost] = {}
    counts = []
    for config in reproduction.configurations:
        if args.measure_cost:
            sources = (settings.source(config.backbone), settings.source(config.adapter) if config.adapter else None)
            costs[config.name] = estimate.measure_cost(
                config,
                sources,
                reproduction.datasets[0].corpus,
                passages=args.measure_cost,
                device=settings.device,
                dtype=settings.dtype,
                batch_size=settings.batch_size,
                max_length=settings.max_length,
            )
        elif args.seconds_per_token is not None or args.seconds_per_text is not None:
            costs[config.name] = estimate.Cost(args.seconds_per_token or 0.0, args.seconds_per_text or 0.0, "given")
        else:
            costs[config.name] = estimate.Cost(
                estimate.PAPER_SECONDS_PER_TOKEN,
                estimate.PAPER_SECONDS_PER_TEXT,
                "paper's H100 latency at batch size 1: an upper bound",
            )
        for dataset in reproduction.datasets:
            count = estimate.count_tokens(
                dataset.corpus, config, settings.source(config.backbone), settings.max_length, args.count_sample
            )
            counts.append((config.name, dataset.name, count))
    print("\n".join(estimate.describe(counts, costs)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 (done), 1 (a missing dataset or model, a failed step) or 2 (usage)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.list:
        print(_list())
        return 0
    if not args.work:
        parser.error("--work is required")
    _check_values(args, parser)
    try:
        configurations = resolve_configurations(args.configs)
    except UnknownConfigurationError as error:
        parser.error(str(error))
    datasets = _datasets(args, parser)
    settings = _settings(args, parser)
    configure_logging()
    missing = []
    for dataset in datasets:
        try:
            find_dataset(dataset)
        except MissingDatasetError as error:
            missing.append(str(error))
    if missing:
        print(f"{PROGRAM}: error: missing dataset(s):\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    try:
        check_models(configurations, settings)
    except MissingModelError as error:
        if not args.dry_run:
            print(f"{PROGRAM}: error: {error}", file=sys.stderr)
            return 1
        print(f"# WARNING (a real run stops here): {error}".replace("\n", "\n# "))
    reproduction = Reproduction(datasets, configurations, settings)
    if args.dry_run:
        dry_run(reproduction, args)
        return 0
    try:
        with lock_work_folder(settings.work):
            reproduction.run()
    except WorkFolderLockedError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    except (DatasetError, StepFailedError) as error:
        write_table(reproduction)  # what has finished so far; unfinished steps are empty cells
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        write_table(reproduction)
        print(f"{PROGRAM}: interrupted; rerun the same command to continue where it stopped", file=sys.stderr)
        return 130
    table = write_table(reproduction)
    print(table.markdown())
    return 0


def write_table(reproduction: Reproduction):
    """Build the table from the step manifests and write WORK/results.{md,csv,json}."""
    from ..reproduction.table import build_table

    s = reproduction.settings
    settings = {
        "device": s.device,
        "dtype": s.dtype,
        "max_length": s.max_length,
        "query_max_length": s.query_max_length,
        "hits": s.hits,
        "depth": s.depth,
        "alpha": s.alpha,
        "rrf_k": s.rrf_k,
        "remove_query": s.remove_query,
        "models": {m: s.source(m) for c in reproduction.configurations for m in c.models},
    }
    table = build_table(
        reproduction.records(),
        [d.name for d in reproduction.datasets],
        reproduction.configurations,
        settings=settings,
    )
    layout = reproduction.layout
    table.write(layout.results("md"), layout.results("csv"), layout.results("json"))
    logger.info("table written to %s, .csv and .json", layout.results("md"))
    return table


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Plan and run a reproduction: every dataset x configuration through encode, index, search, fuse and evaluate.

Each step is one of the package's or Pyserini's ordinary tools, called in this process:

=================  ===========================================================================================
step               tool (``--dry-run`` prints the equivalent command)
=================  ===========================================================================================
``prepare``        :func:`~.datasets.prepare_dataset`: topics.tsv, qrels.txt, Anserini flat documents
``bm25/index``     ``python -m pyserini.index.lucene --collection JsonCollection`` (a child process)
``bm25/search``    Pyserini's ``LuceneSearcher`` (BM25, k1 0.9, b 0.4), as ``python -m pyserini.search.lucene --bm25``
``<c>/encode``     ``python -m pyserini_diffretriever.encode`` (one pass, every representation, resumable)
``<c>/index``      ``python -m pyserini_diffretriever.index lucene`` (the impact index)
``<c>/search-*``   :func:`~pyserini_diffretriever.search.open_searcher` with one model loaded per configuration,
                   as ``python -m pyserini_diffretriever.search --index ...``
``<c>/hybrid``     :func:`~pyserini_diffretriever.search.fuse_min_max` of the two runs (the paper's fusion)
``<c>/hybrid+bm25`` Pyserini's ``reciprocal_rank_fusion`` with the BM25 run (``python -m pyserini.fusion``)
``*/eval-*``       Pyserini's ``trec_eval -c -m ndcg_cut.10 -m recall.100``
=================  ===========================================================================================

Work folder: ``WORK/<dataset>/data`` (prepared files), ``WORK/<dataset>/bm25`` (index, run),
``WORK/<dataset>/<configuration>/{enc,impact-index,runs}``, ``WORK/steps/...`` (step manifests, see
:mod:`.steps`) and the result table ``WORK/results.{md,csv,json}``.

Searching in this process (rather than one search command per run) loads a 7B model once per configuration
instead of once per dataset and representation, and lets the search latency exclude model loading; the runs
equal the search command's (a test compares them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .configurations import BM25, Configuration
from .datasets import Dataset, PreparedDataset, prepare_dataset
from .evaluation import reciprocal_rank_fusion, trec_eval, trec_eval_command
from .steps import StepFailedError, StepLog, StepRecord

logger = logging.getLogger(__name__)

__all__ = [
    "Layout",
    "MissingModelError",
    "Reproduction",
    "ReproductionSettings",
    "Step",
    "check_models",
    "folder_bytes",
]

PYTHON = "python"  # how commands are shown; they run in this interpreter


class MissingModelError(RuntimeError):
    """A checkpoint a configuration needs is neither local nor in the Hugging Face cache (says what to download)."""


@dataclass(frozen=True)
class ReproductionSettings:
    """Everything besides datasets and configurations that decides how a reproduction runs.

    Only ``max_length``, ``query_max_length``, ``dtype``, ``hits``, ``depth``, ``alpha``, ``rrf_k`` and
    ``remove_query`` change results, so only they enter the step keys; device, batch sizes and threads do not.
    """

    work: Path
    device: str = "cuda:0"
    dtype: str | None = None
    batch_size: int = 16
    search_batch_size: int = 64
    max_length: int = 512
    query_max_length: int | None = None
    threads: int = 1
    hits: int = 1000
    depth: int = 1000
    alpha: float = 0.5
    rrf_k: int = 60
    remove_query: bool = False
    models: Mapping[str, str] = field(default_factory=dict)
    download: bool = False
    progress: bool = False

    def source(self, hub_id: str) -> str:
        """Where a checkpoint is read from: a ``--model ID=DIR`` replacement, else the hub id itself."""
        return self.models.get(hub_id, hub_id)


class Layout:
    """Paths inside the work folder (one place, read by the steps and the table)."""

    def __init__(self, work: Path) -> None:
        self.work = Path(work)

    def data(self, dataset: str) -> Path:
        return self.work / dataset / "data"

    def bm25_index(self, dataset: str) -> Path:
        return self.work / dataset / BM25 / "index"

    def bm25_run(self, dataset: str) -> Path:
        return self.work / dataset / BM25 / "run.trec"

    def encodings(self, dataset: str, config: str) -> Path:
        return self.work / dataset / config / "enc"

    def impact_index(self, dataset: str, config: str) -> Path:
        return self.work / dataset / config / "impact-index"

    def run(self, dataset: str, config: str, run: str) -> Path:
        return self.work / dataset / config / "runs" / f"{run}.trec"

    def index_folder(self, dataset: str, config: str, representation: str) -> Path:
        """The folder a representation is searched in."""
        if representation == "impact":
            return self.impact_index(dataset, config)
        return self.encodings(dataset, config) / representation

    def results(self, suffix: str) -> Path:
        return self.work / f"results.{suffix}"


@dataclass
class Step:
    """One unit of work with a printable command, a key that decides its output, and its outputs."""

    id: str
    command: str
    key: dict[str, Any]
    outputs: list[Path]
    action: Callable[[], Mapping[str, Any] | None]
    gpu: bool = False
    cleanup: list[Path] = field(default_factory=list)  # removed with the outputs when the key changed


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _show(argv: Sequence[Any]) -> str:
    return " ".join(shlex.quote(str(part)) for part in argv)


def _digest(*keys: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cached(hub_id: str, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of transformers
        return False
    found = try_to_load_from_cache(hub_id, filename)
    return isinstance(found, str)


def check_models(configurations: Sequence[Configuration], settings: ReproductionSettings) -> None:
    """Fail before any work when a needed checkpoint is missing, naming each one and how to get it.

    A checkpoint is available when ``--model ID=DIR`` names an existing folder, or the Hugging Face cache holds it
    (or ``settings.download`` allows fetching it during the run).
    """
    problems: list[str] = []
    for hub_id in dict.fromkeys(m for c in configurations for m in c.models):
        source = settings.source(hub_id)
        if source != hub_id:
            if not Path(source).expanduser().is_dir():
                problems.append(f"{hub_id}: --model gives {source}, which is not a folder")
            continue
        if Path(hub_id).expanduser().is_dir() or settings.download:
            continue
        adapter = any(c.adapter == hub_id for c in configurations)
        if not _cached(hub_id, "adapter_config.json" if adapter else "config.json"):
            problems.append(
                f"{hub_id}: not in the Hugging Face cache; download it with `hf download {hub_id}` "
                f"(or pass --model {hub_id}=DIR for a local copy, or --download to fetch it during the run)"
            )
    if problems:
        raise MissingModelError("missing model(s):\n  " + "\n  ".join(problems))


class Reproduction:
    """The steps for ``datasets`` x ``configurations`` (module docstring), run in order and resumable.

    Parameters
    ----------
    datasets : sequence of Dataset
        In table order.
    configurations : sequence of Configuration
        In table order (BM25 always comes first and needs no configuration).
    settings : ReproductionSettings
        Work folder and run options.
    """

    def __init__(
        self, datasets: Sequence[Dataset], configurations: Sequence[Configuration], settings: ReproductionSettings
    ) -> None:
        self.datasets = list(datasets)
        self.configurations = list(configurations)
        self.settings = settings
        self.layout = Layout(settings.work)
        self.log = StepLog(settings.work)
        self._models: dict[str, Any] = {}

    # ------------------------------------------------------------------ planning

    def plan(self) -> list[Step]:
        """Every step, in the order they run: datasets and BM25 first, then each configuration."""
        steps: list[Step] = []
        for dataset in self.datasets:
            steps += self._dataset_steps(dataset)
        for config in self.configurations:
            steps += [self._encode_step(d, config) for d in self.datasets]
            steps += [self._index_step(d, config) for d in self.datasets]
            for dataset in self.datasets:
                steps += [self._search_step(dataset, config, rep) for rep in config.representations]
            for dataset in self.datasets:
                steps += [self._hybrid_step(dataset, config), self._bm25_fusion_step(dataset, config)]
                steps += [self._eval_step(dataset, config.name, run) for run in config.runs]
        return steps

    def _key(self, dataset: Dataset, **own: Any) -> dict[str, Any]:
        return {"dataset": dataset.fingerprint(), **own}

    def _dataset_steps(self, dataset: Dataset) -> list[Step]:
        data, index = self.layout.data(dataset.name), self.layout.bm25_index(dataset.name)
        run = self.layout.bm25_run(dataset.name)
        s = self.settings
        prepare = Step(
            id=f"{dataset.name}/data/prepare",
            command=f"# check {dataset.folder} (BEIR format) and write {data}/topics.tsv, qrels.txt, bm25-docs/",
            key=self._key(dataset),
            outputs=[data / "topics.tsv", data / "qrels.txt", data / "bm25-docs" / "docs.jsonl"],
            action=lambda: self._prepare(dataset).summary(),
        )
        index_argv = [
            "-m",
            "pyserini_diffretriever.run",
            "pyserini.index.lucene",
            "--collection",
            "JsonCollection",
            "--input",
            data / "bm25-docs",
            "--index",
            index,
            "--generator",
            "DefaultLuceneDocumentGenerator",
            "--threads",
            s.threads,
        ]
        bm25_index = Step(
            id=f"{dataset.name}/{BM25}/index",
            command=_show([PYTHON, *index_argv]),
            key=self._key(dataset, step="bm25-index"),
            outputs=[index],
            action=lambda: self._bm25_index(index, index_argv),
        )
        search_argv = [PYTHON, "-m", "pyserini_diffretriever.run", "pyserini.search.lucene", "--index", index]
        search_argv += ["--topics", data / "topics.tsv", "--bm25", "--hits", s.hits, "--threads", s.threads]
        search_argv += ["--output", run] + (["--remove-query"] if s.remove_query else [])
        bm25_search = Step(
            id=f"{dataset.name}/{BM25}/search",
            command=_show(search_argv),
            key=self._key(dataset, step="bm25-search", hits=s.hits, remove_query=s.remove_query),
            outputs=[run],
            action=lambda: self._bm25_search(dataset, index, run),
        )
        return [prepare, bm25_index, bm25_search, self._eval_step(dataset, BM25, BM25)]

    def _encode_key(self, dataset: Dataset, config: Configuration) -> dict[str, Any]:
        s = self.settings
        return self._key(
            dataset,
            step="encode",
            backbone=config.backbone,
            adapter=config.adapter,
            k=[config.k_query, config.k_passage],
            prompt=config.prompt,
            max_length=s.max_length,
            query_max_length=s.query_max_length,
            dtype=s.dtype,
            representations=list(config.representations),
            multi_dtype="float16",
        )

    def _encode_argv(self, dataset: Dataset, config: Configuration) -> list[str]:
        s = self.settings
        argv = ["input", "--corpus", str(dataset.corpus), "--fields", "title", "text", "--on-error", "skip"]
        argv += ["encoder", "--encoder", s.source(config.backbone)]
        if config.adapter:
            argv += ["--adapter", s.source(config.adapter)]
        argv += ["--representation", *config.representations]
        argv += ["--k", str(config.k_passage), "--query-k", str(config.k_query)]
        if config.prompt:
            argv += ["--prompt", config.prompt, "--query-prompt", config.prompt]
        argv += ["--batch-size", str(s.batch_size), "--max-length", str(s.max_length), "--device", s.device]
        if s.query_max_length:
            argv += ["--query-max-length", str(s.query_max_length)]
        if s.dtype:
            argv += ["--dtype", s.dtype]
        argv += ["output", "--embeddings", str(self.layout.encodings(dataset.name, config.name)), "--allow-empty"]
        if config.multi:  # 16 x 3584 float32 would be 229 KB per Dream passage; float16 halves it
            argv += ["--multi-dtype", "float16"]
        if not s.progress:
            argv.append("--no-progress")
        return argv

    def _encode_step(self, dataset: Dataset, config: Configuration) -> Step:
        argv = self._encode_argv(dataset, config)
        enc = self.layout.encodings(dataset.name, config.name)
        return Step(
            id=f"{dataset.name}/{config.name}/encode",
            command=_show([PYTHON, "-m", "pyserini_diffretriever.encode", *argv]),
            key=self._encode_key(dataset, config),
            outputs=[enc / rep for rep in config.representations],
            action=lambda: self._encode(argv, enc, config),
            gpu=True,
            cleanup=[enc],
        )

    def _index_step(self, dataset: Dataset, config: Configuration) -> Step:
        enc = self.layout.encodings(dataset.name, config.name)
        index = self.layout.impact_index(dataset.name, config.name)
        argv = [
            "lucene",
            "--input",
            str(enc / "impact"),
            "--index",
            str(index),
            "--threads",
            str(self.settings.threads),
        ]
        return Step(
            id=f"{dataset.name}/{config.name}/index",
            command=_show([PYTHON, "-m", "pyserini_diffretriever.index", *argv]),
            key={"step": "impact-index", "after": _digest(self._encode_key(dataset, config))},
            outputs=[index],
            action=lambda: self._impact_index(argv, index),
        )

    def _search_step(self, dataset: Dataset, config: Configuration, representation: str) -> Step:
        s = self.settings
        folder = self.layout.index_folder(dataset.name, config.name, representation)
        run = self.layout.run(dataset.name, config.name, representation)
        topics = self.layout.data(dataset.name) / "topics.tsv"
        argv = [PYTHON, "-m", "pyserini_diffretriever.search", "--index", folder, "--topics", topics]
        argv += ["--output", run, "--run-tag", f"{config.name}.{representation}", "--hits", s.hits]
        argv += ["--device", s.device, "--batch-size", s.search_batch_size, "--encoder-batch-size", s.batch_size]
        argv += ["--threads", s.threads]
        argv += (["--dtype", s.dtype] if s.dtype else []) + (["--remove-query"] if s.remove_query else [])
        return Step(
            id=f"{dataset.name}/{config.name}/search-{representation}",
            command=_show(argv),
            key={
                "step": f"search-{representation}",
                "after": _digest(self._encode_key(dataset, config)),
                "hits": s.hits,
                "remove_query": s.remove_query,
            },
            outputs=[run],
            action=lambda: self._search(dataset, config, representation, folder, topics, run),
            gpu=True,
        )

    def _hybrid_step(self, dataset: Dataset, config: Configuration) -> Step:
        s = self.settings
        dense_side, sparse_side = config.hybrid_sides
        a, b = (self.layout.run(dataset.name, config.name, side) for side in (dense_side, sparse_side))
        out = self.layout.run(dataset.name, config.name, "hybrid")
        return Step(
            id=f"{dataset.name}/{config.name}/hybrid",
            command=f"# paper's min-max fusion (alpha {s.alpha} on {dense_side}, depth {s.depth}): "
            f"fuse_min_max(read_run({a}), read_run({b})) -> {out}",
            key={
                "step": "hybrid",
                "after": _digest(self._encode_key(dataset, config)),
                "alpha": s.alpha,
                "depth": s.depth,
            },
            outputs=[out],
            action=lambda: self._min_max(a, b, out, f"{config.name}.hybrid"),
        )

    def _bm25_fusion_step(self, dataset: Dataset, config: Configuration) -> Step:
        s = self.settings
        bm25, hybrid = self.layout.bm25_run(dataset.name), self.layout.run(dataset.name, config.name, "hybrid")
        out = self.layout.run(dataset.name, config.name, "hybrid+bm25")
        argv = [PYTHON, "-m", "pyserini.fusion", "--runs", bm25, hybrid, "--output", out, "--method", "rrf"]
        argv += ["--rrf.k", s.rrf_k, "--depth", s.depth, "--k", s.hits, "--runtag", f"{config.name}.hybrid+bm25"]
        return Step(
            id=f"{dataset.name}/{config.name}/hybrid+bm25",
            command=_show(argv),
            key={
                "step": "rrf-bm25",
                "after": _digest(self._encode_key(dataset, config), self._key(dataset, step="bm25-search")),
                "rrf_k": s.rrf_k,
                "depth": s.depth,
                "hits": s.hits,
                "remove_query": s.remove_query,
            },
            outputs=[out],
            action=lambda: self._rrf([bm25, hybrid], out, f"{config.name}.hybrid+bm25"),
        )

    def _eval_step(self, dataset: Dataset, owner: str, run: str) -> Step:
        qrels = self.layout.data(dataset.name) / "qrels.txt"
        run_file = self.layout.bm25_run(dataset.name) if owner == BM25 else self.layout.run(dataset.name, owner, run)
        upstream = self._key(dataset, step="bm25-search")
        for config in self.configurations:
            if config.name == owner:
                upstream = {"encode": self._encode_key(dataset, config), "bm25": upstream}
        s = self.settings
        return Step(
            id=f"{dataset.name}/{owner}/eval-{run}",
            command=_show(trec_eval_command(qrels, run_file)),
            key={
                "step": f"eval-{run}",
                "after": _digest(upstream),
                "settings": [s.hits, s.depth, s.alpha, s.rrf_k, s.remove_query],
            },
            outputs=[run_file],
            action=lambda: trec_eval(qrels, run_file),
        )

    # ------------------------------------------------------------------ actions

    def _prepare(self, dataset: Dataset) -> PreparedDataset:
        prepared = prepare_dataset(dataset, self.layout.data(dataset.name))
        logger.info(
            "dataset %s: %d documents, %d judged queries, %d judgements",
            dataset.name,
            prepared.documents,
            prepared.queries,
            prepared.judgements,
        )
        return prepared

    def _bm25_index(self, index: Path, argv: list[Any]) -> dict[str, Any]:
        """Run the printed command in a child process (Anserini's indexer may exit the JVM), into ``index.partial``."""
        partial = index.with_name(index.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [sys.executable, *(str(partial) if part == index else str(part) for part in argv)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StepFailedError(
                f"BM25 indexing failed (exit {proc.returncode}): {_show(command)}\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        shutil.rmtree(index, ignore_errors=True)
        os.replace(partial, index)
        return {"index_bytes": folder_bytes(index)}

    def _topics(self, path: Path) -> dict[str, str]:
        from ..search import read_topics

        return read_topics(path)

    def _write_run(self, run: Path, results: Mapping[str, Sequence[Any]], tag: str) -> None:
        from ..search import write_run

        tmp = run.with_name(run.name + ".tmp")
        write_run(tmp, results, tag=tag, max_hits=self.settings.hits)
        os.replace(tmp, run)

    def _filter(self, qid: str, hits: Sequence[Any]) -> list[Any]:
        if self.settings.remove_query:
            return [hit for hit in hits if str(hit.docid) != qid]
        return list(hits)

    def _timed_search(self, searcher: Any, topics: Mapping[str, str]) -> tuple[dict[str, list[Any]], float]:
        s = self.settings
        qids, texts = list(topics), list(topics.values())
        results: dict[str, list[Any]] = {}
        started = time.perf_counter()
        for lo in range(0, len(qids), s.search_batch_size):
            ids = qids[lo : lo + s.search_batch_size]
            found = searcher.batch_search(texts[lo : lo + s.search_batch_size], ids, k=s.hits, threads=s.threads)
            for qid in ids:
                results[qid] = self._filter(qid, found.get(qid, []))
        return results, time.perf_counter() - started

    def _bm25_search(self, dataset: Dataset, index: Path, run: Path) -> dict[str, Any]:
        from pyserini.search.lucene import LuceneSearcher

        topics = self._topics(self.layout.data(dataset.name) / "topics.tsv")
        searcher = LuceneSearcher(str(index))  # BM25, k1 0.9, b 0.4: `pyserini.search.lucene --bm25`
        try:
            results, seconds = self._timed_search(searcher, topics)
        finally:
            searcher.close()
        self._write_run(run, results, "Anserini-BM25-flat")
        return {"queries": len(topics), "search_seconds": seconds}

    def _encode(self, argv: list[str], enc: Path, config: Configuration) -> dict[str, Any]:
        from ..cli.encode import main as encode_main
        from ..writers import verify_output

        self._release_models()  # one 7B model on the device at a time
        # an `enc` here is from a run killed between the encoder's final rename and this step's manifest: replace it
        code = encode_main(argv + (["--overwrite"] if enc.exists() else []))
        if code != 0:
            raise StepFailedError(
                f"encoding failed (exit {code}); see the log above. Rerunning the same command resumes it."
            )
        manifest = verify_output(enc / config.representations[0])
        return {"documents": manifest.get("num_docs"), "skipped_records": manifest.get("num_skipped_records", 0)}

    def _impact_index(self, argv: list[str], index: Path) -> dict[str, Any]:
        from ..cli.index import main as index_main

        code = index_main(argv + (["--overwrite"] if index.exists() else []))
        if code != 0:
            raise StepFailedError(f"impact indexing failed (exit {code}); see the log above")
        return {"index_bytes": folder_bytes(index)}

    def _model(self, config: Configuration) -> Any:
        """One loaded model per configuration, shared by all its searches."""
        if config.name not in self._models:
            self._release_models()
            from ..encoders import DiffRetrieverModel

            s = self.settings
            self._models[config.name] = DiffRetrieverModel(
                s.source(config.backbone),
                dtype=s.dtype or "float32",
                device=s.device,
                adapter=s.source(config.adapter) if config.adapter else None,
            )
        return self._models[config.name]

    def _release_models(self) -> None:
        if self._models:
            self._models.clear()
            import gc

            gc.collect()
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:  # pragma: no cover
                pass

    def _search(
        self, dataset: Dataset, config: Configuration, representation: str, folder: Path, topics_file: Path, run: Path
    ) -> dict[str, Any]:
        from ..search import open_searcher

        s = self.settings
        model = self._model(config)
        options: dict[str, Any] = {"threads": s.threads} if representation == "multi" else {}
        searcher = open_searcher(
            folder, model=model, device=s.device, dtype=s.dtype, batch_size=s.batch_size, **options
        )
        topics = self._topics(topics_file)
        results, seconds = self._timed_search(searcher, topics)
        self._write_run(run, results, f"{config.name}.{representation}")
        close = getattr(searcher, "close", None)
        if callable(close):
            close()
        return {"queries": len(topics), "search_seconds": seconds, "index_bytes": folder_bytes(folder)}

    def _min_max(self, a: Path, b: Path, out: Path, tag: str) -> dict[str, Any]:
        from ..search import fuse_min_max, read_run

        s = self.settings
        started = time.perf_counter()
        fused = fuse_min_max(read_run(a), read_run(b), alpha=s.alpha, depth=s.depth, k=s.hits)
        seconds = time.perf_counter() - started
        self._write_run(out, fused, tag)
        return {"fusion_seconds": seconds}

    def _rrf(self, runs: list[Path], out: Path, tag: str) -> dict[str, Any]:
        s = self.settings
        started = time.perf_counter()
        reciprocal_rank_fusion(runs, out, tag=tag, rrf_k=s.rrf_k, depth=s.depth, k=s.hits)
        return {"fusion_seconds": time.perf_counter() - started}

    # ------------------------------------------------------------------ running

    def run(self, steps: Sequence[Step] | None = None) -> dict[str, StepRecord]:
        """Run (or skip, when finished) every step; returns the step records by id."""
        records: dict[str, StepRecord] = {}
        try:
            for step in self.plan() if steps is None else steps:
                logger.info("step %s: %s", step.id, step.command)
                records[step.id] = self.log.run(step.id, step.key, step.outputs, step.action, step.cleanup)
        finally:
            self._release_models()
        return records

    def records(self) -> dict[str, StepRecord]:
        """The finished steps' records (what the table is built from)."""
        found: dict[str, StepRecord] = {}
        for step in self.plan():
            record = self.log.finished(step.id, step.key, step.outputs)
            if record is not None:
                found[step.id] = record
        return found

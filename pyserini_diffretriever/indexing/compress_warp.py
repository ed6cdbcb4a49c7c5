"""Build a cell-major (``multi-warp``) multi-vector index in one streaming pass, with its recall measured on the way.

``python -m pyserini_diffretriever.index compress --input ENC/multi --output ENC/multi-warp`` runs
:func:`compress_multivector_warp`; :func:`build_warp_index` takes any :class:`DocumentSource` (the benchmark
streams a synthetic collection that is never stored as floats).

1. **train** on whole sample documents (:func:`.warp_codec.train_warp_codec`), and draw **pseudo-queries** from
   them: ``query_vectors`` vectors of a random sample document, moved by one shared random step taken from the
   collection itself (half the difference of two other sample vectors times ``perturbation``), norms kept --
   queries resemble their target without being copies of it;
2. **stream** every document once: small-tier code and cell of every vector, its SQ8 re-rank code (document
   order), and the exact float32 MaxSim of every pseudo-query against the block (a running top-100): the ground
   truth costs one product per vector and needs no second pass;
3. **commit** every ``checkpoint_every`` documents (``OUT.partial`` + ``progress.json``, as the encoder does): a
   killed build rerun with the same arguments truncates the files to the last commit and continues;
4. **finish**: sort the codes by cell (cell-major ``codes.npy``, ``doc_numbers.npy``, ``cell_offsets.npy``), then
   **estimate** recall@100 by searching the pseudo-queries with the new index (no float reads, and each re-rank
   depth) against the exact top-100; the manifest records it, the log prints it, and a warning names the option
   that reaches ``min_recall`` when the default falls short.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..layouts import PROGRESS_NAME
from ..search import warp_index as layout
from ..writers.checkpoint import ResumableOutput
from ..writers.manifest import build_manifest, write_manifest
from ..writers.multivector import MultiVectorFolder, _npy_header, read_rows
from .warp_codec import (
    DEFAULT_BITS,
    DEFAULT_RESIDUAL,
    DEFAULT_SUBVECTOR_DIMS,
    TRAIN_POINTS_PER_CELL,
    WarpCodec,
    default_cells,
    train_warp_codec,
)

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_DOCS = 8192
"""Sample documents for training (x K vectors each; k-means keeps at most 256 per cell)."""

DEFAULT_ESTIMATE_QUERIES = 64
DEFAULT_QUERY_VECTORS = 4
DEFAULT_PERTURBATION = 0.3
DEFAULT_MIN_RECALL = 0.95
DEFAULT_RERANK_DEPTHS = (100, 400, 600, 1000)
RECALL_DEPTH = 100

NPROBE_GRID = (8, 16, 32, 64, 128, 256)
CANDIDATE_GRID = (250, 500, 1000, 2000)
"""The search settings :func:`tune_search` measures at build time."""
TUNE_TOLERANCE = 0.005
"""The default search is the cheapest setting whose estimated recall@100 is within this of the best measured..."""
TUNE_WORST_TOLERANCE = 0.02
"""... and whose worst pseudo-query is within this of the best worst query (two documents of its top 100).

Why the worst query too: pseudo-queries lie closer to the collection than real queries, so a mean measured on
them forgives too few cells. On B9's flat geometry at 100k, nprobe 8 estimated 0.944 against 0.948 for the best
(within 0.005) and measured 0.922 on the benchmark's queries (0.941 at nprobe 64); its worst pseudo-query,
0.70 against 0.83, is what gave it away. On the LLM-like geometry the worst query barely moves with nprobe
(0.87-0.89) and nprobe 8 stays the choice."""
EXACT_CODE_COST = 4.0
"""Cost of scoring one code of a candidate through ``doc_rows`` relative to one probed code (measured at 100k x
16: ~0.45 us through random reads vs ~0.11 us streamed from a probed cell)."""

_CELLS_TMP = "cells.i32.tmp"
_CODES_TMP = "codes.u8.tmp"
_ENDS_TMP = "offsets.i64.tmp"


@dataclass
class DocumentBlock:
    """Consecutive documents: ids, their vectors stacked ``[m, H]`` float32, and each one's vector count."""

    ids: list[str]
    rows: np.ndarray
    lengths: np.ndarray


class DocumentSource(Protocol):
    """What the builder reads: random whole documents for training, then every document once, in order."""

    num_docs: int
    dimension: int
    encoder_settings: dict[str, Any]
    manifest_extra: dict[str, Any]
    identity: dict[str, Any]

    def sample(self, count: int, seed: int) -> list[np.ndarray]: ...

    def blocks(self, start: int) -> Iterator[DocumentBlock]: ...


class FolderSource:
    """A float ``multi`` folder as a :class:`DocumentSource` (memory-mapped, read with plain file reads)."""

    def __init__(self, directory: str | os.PathLike, docs_per_block: int = 1024) -> None:
        self.folder = MultiVectorFolder(directory)
        self.num_docs = len(self.folder)
        self.dimension = int(self.folder.vectors.shape[1])
        self.encoder_settings = self.folder.manifest.get("encoder", {})
        self.manifest_extra = {key: self.folder.manifest[key] for key in ("query",) if key in self.folder.manifest}
        self.identity = {
            "input": str(self.folder.directory.resolve()),
            "input_num_vectors": int(self.folder.manifest.get("num_vectors", len(self.folder.vectors))),
            "input_created": self.folder.manifest.get("created"),
        }
        self.docs_per_block = docs_per_block

    def sample(self, count: int, seed: int) -> list[np.ndarray]:
        """``count`` random documents (ascending, each one read once), float32."""
        numbers = np.random.default_rng(seed).choice(self.num_docs, size=min(count, self.num_docs), replace=False)
        return [np.asarray(self.folder.document(int(i)), dtype=np.float32) for i in np.sort(numbers)]

    def blocks(self, start: int) -> Iterator[DocumentBlock]:
        offsets = self.folder.offsets
        for begin in range(start, self.num_docs, self.docs_per_block):
            stop = min(begin + self.docs_per_block, self.num_docs)
            rows = read_rows(self.folder.vectors, int(offsets[begin]), int(offsets[stop])).astype(np.float32)
            yield DocumentBlock(self.folder.docids[begin:stop], rows, np.diff(offsets[begin : stop + 1]))


def pseudo_queries(
    documents: list[np.ndarray],
    count: int,
    vectors: int,
    perturbation: float,
    seed: int,
    pool: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(queries [count, vectors, H], index of each one's source document)`` (module docstring, step 1).

    ``pool``: ``np.concatenate(documents)`` when the caller has it already (a 8,192-document sample at 16 x 3584
    is 1.9 GB; a second copy doubled the build's peak memory)."""
    rng = np.random.default_rng([seed, 17])
    pool = np.concatenate(documents) if pool is None else pool
    sources = rng.choice(len(documents), size=count, replace=count > len(documents))
    out = np.empty((count, vectors, pool.shape[1]), dtype=np.float32)
    for q, d in enumerate(sources):
        doc = documents[d]
        chosen = doc[rng.choice(len(doc), size=vectors, replace=vectors > len(doc))]
        a, b = pool[rng.integers(0, len(pool), size=2)]
        moved = chosen + perturbation * 0.5 * (a - b)
        norms = np.linalg.norm(chosen, axis=1, keepdims=True)
        out[q] = moved * norms / np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
    return out, sources


def exact_block_scores(queries: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Exact clamped MaxSim ``[Q, b]`` of queries ``[Q, K, H]`` against a block of documents (float32).

    A document without vectors (every slot stop-truncated) scores 0; it is left out of ``reduceat``, which would
    otherwise give it its neighbour's first column (or fail when it ends the block).
    """
    lengths = np.asarray(lengths)
    scores = np.zeros((queries.shape[0], len(lengths)), dtype=np.float32)
    filled = lengths > 0
    if filled.any():
        sims = queries.reshape(-1, queries.shape[-1]) @ rows.T  # [Q*K, m]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[filled]
        best = np.maximum(np.maximum.reduceat(sims, starts, axis=1), 0)
        scores[:, filled] = best.reshape(queries.shape[0], queries.shape[1], -1).sum(axis=1)
    return scores


class RunningTop:
    """Top-``depth`` documents per query over streamed blocks (ties: lower document number first)."""

    def __init__(self, num_queries: int, depth: int, state: Mapping[str, Any] | None = None) -> None:
        self.depth = depth
        if state:
            self.scores = np.asarray(state["scores"], dtype=np.float32).reshape(num_queries, -1)
            self.docs = np.asarray(state["docs"], dtype=np.int64).reshape(num_queries, -1)
        else:
            self.scores = np.empty((num_queries, 0), np.float32)
            self.docs = np.empty((num_queries, 0), np.int64)

    def add(self, scores: np.ndarray, first_doc: int) -> None:
        docs = np.broadcast_to(np.arange(first_doc, first_doc + scores.shape[1]), scores.shape)
        all_scores = np.concatenate([self.scores, scores], axis=1)
        all_docs = np.concatenate([self.docs, docs], axis=1)
        keep = np.lexsort((all_docs, -all_scores), axis=1)[:, : self.depth]
        self.scores = np.take_along_axis(all_scores, keep, 1)
        self.docs = np.take_along_axis(all_docs, keep, 1)

    def state(self) -> dict[str, Any]:
        return {"scores": self.scores.ravel().tolist(), "docs": self.docs.ravel().tolist()}


class _AppendFiles:
    """Append-only files of ``OUT.partial`` whose committed lengths go into the progress state."""

    def __init__(self, folder: Path, names: tuple[str, ...], committed: Mapping[str, int] | None) -> None:
        self.folder = folder
        self.handles = {}
        for name in names:
            path = folder / name
            if committed is not None:
                with open(path, "r+b") as handle:
                    handle.truncate(int(committed[name]))
            self.handles[name] = open(path, "ab")  # noqa: SIM115 - closed by close(), kept open across blocks

    def write(self, name: str, data: bytes) -> None:
        self.handles[name].write(data)

    def sync(self) -> dict[str, int]:
        sizes = {}
        for name, handle in self.handles.items():
            handle.flush()
            os.fsync(handle.fileno())
            sizes[name] = handle.tell()
        return sizes

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def build_warp_index(
    source: DocumentSource,
    output_dir: str | os.PathLike,
    *,
    reduced_dimension: int | None = None,
    residual: str = DEFAULT_RESIDUAL,
    bits: int = DEFAULT_BITS,
    subvector_dims: int = DEFAULT_SUBVECTOR_DIMS,
    nlist: int | None = None,
    rerank_tier: str = "sq8",
    train_docs: int = DEFAULT_TRAIN_DOCS,
    nprobe: int | None = None,
    candidates: int | None = None,
    estimate_queries: int = DEFAULT_ESTIMATE_QUERIES,
    query_vectors: int = DEFAULT_QUERY_VECTORS,
    perturbation: float = DEFAULT_PERTURBATION,
    min_recall: float = DEFAULT_MIN_RECALL,
    seed: int = 0,
    checkpoint_every: int = 65_536,
    overwrite: bool = False,
    restart: bool = False,
) -> dict[str, Any]:
    """Build a ``multi-warp`` folder from ``source`` (module docstring); return its manifest.

    Parameters
    ----------
    reduced_dimension, residual, bits, subvector_dims, nlist, rerank_tier
        The codec (:mod:`.warp_codec`): projected dimension, residual code ``"pq"`` (``subvector_dims``
        dimensions per byte) or ``"sq"`` (2 or 4 ``bits`` per dimension), cells (default
        :func:`.warp_codec.default_cells`), re-rank tier ``"sq8"`` or ``"none"``.
    train_docs : int
        Sample documents for training and pseudo-queries.
    nprobe, candidates : int, optional
        The searcher's defaults recorded in the manifest: cells per query vector, and WARP candidates re-scored by
        their whole small-tier MaxSim. Unset: tuned by the recall estimate (:func:`tune_search`), or
        :data:`..search.warp_index.DEFAULT_NPROBE` / ``DEFAULT_CANDIDATES`` without one.
    estimate_queries, query_vectors, perturbation
        Pseudo-queries of the recall estimate (0 queries: no estimate).
    min_recall : float
        Warn when the estimated recall@100 of the default search is below this.
    checkpoint_every, overwrite, restart
        Resumability, as for the encoder.
    """
    options = {
        "engine": "warp",
        "reduced_dimension": reduced_dimension,
        "residual": residual,
        "bits": int(bits),
        "subvector_dims": int(subvector_dims),
        "nlist": nlist,
        "rerank_tier": rerank_tier,
        "train_docs": int(train_docs),
        "estimate_queries": int(estimate_queries),
        "query_vectors": int(query_vectors),
        "perturbation": float(perturbation),
        "seed": int(seed),
        "checkpoint_every": int(checkpoint_every),
    }
    if source.num_docs < 1:
        raise ValueError("the collection has no documents")
    if (nprobe is not None and nprobe < 1) or (candidates is not None and candidates < 0):
        raise ValueError(f"nprobe must be >= 1 and candidates >= 0, got {nprobe} and {candidates}")
    with ResumableOutput(output_dir, {**source.identity, **options}, overwrite=overwrite, restart=restart) as out:
        partial = out.partial
        progress = out.progress
        clock = _StageClock()
        if progress is None:
            with clock("train"):
                facts = _train(source, partial, options)
        else:
            facts = dict(progress["codec_facts"])
        codec = WarpCodec.load(partial / layout.CODEC_NAME)
        queries = np.load(partial / "pseudo_queries.npy") if estimate_queries else None
        truth = RunningTop(estimate_queries, RECALL_DEPTH, progress and progress["truth"])
        names = (_CELLS_TMP, _CODES_TMP, _ENDS_TMP, layout.DOCID_NAME)
        names += (layout.RERANK_NAME,) if codec.has_rerank_tier else ()
        files = _AppendFiles(partial, names, progress and progress["files"])
        if progress is None and codec.has_rerank_tier:
            files.write(layout.RERANK_NAME, b"\0" * 128)
        done = int(progress["docs_done"]) if progress else 0
        vectors = int(progress["vectors_done"]) if progress else 0
        since_commit = 0
        try:
            for block in source.blocks(done):
                with clock("check"):
                    _check_block(block, source.dimension, done)
                with clock("encode_small"):
                    projected = codec.project(block.rows)  # shared with the split re-rank tier
                    cells, codes = codec.encode_small(block.rows, projected)
                files.write(_CELLS_TMP, cells.astype("<i4").tobytes())
                files.write(_CODES_TMP, codes.tobytes())
                if codec.has_rerank_tier:
                    with clock("encode_rerank"):
                        rerank_codes = codec.encode_rerank(block.rows, projected)
                    files.write(layout.RERANK_NAME, rerank_codes.tobytes())
                ends = vectors + np.cumsum(block.lengths)
                vectors += len(block.rows)
                files.write(_ENDS_TMP, ends.astype("<i8").tobytes())
                files.write(layout.DOCID_NAME, "".join(f"{docid}\n" for docid in block.ids).encode("utf-8"))
                if queries is not None:
                    with clock("estimate_truth"):
                        truth.add(exact_block_scores(queries, block.rows, block.lengths), done)
                done += len(block.ids)
                since_commit += len(block.ids)
                if since_commit >= checkpoint_every and done < source.num_docs:
                    with clock("commit"):
                        state = {"files": files.sync(), "docs_done": done, "vectors_done": vectors}
                        out.commit({**state, "records_done": done, "truth": truth.state(), "codec_facts": facts})
                    since_commit = 0
                    logger.info("indexed %d of %d documents", done, source.num_docs)
            with clock("commit"):
                files.sync()
        finally:
            files.close()
        if done != source.num_docs:
            raise ValueError(f"the source yielded {done} documents, expected {source.num_docs}")
        with clock("layout"):
            _finish_layout(partial, codec, vectors, done)
        manifest = _manifest(
            source,
            codec,
            facts,
            done,
            vectors,
            nprobe or layout.DEFAULT_NPROBE,
            layout.DEFAULT_CANDIDATES if candidates is None else candidates,
        )
        write_manifest(partial, manifest)
        if queries is not None:
            with clock("estimate_search"), layout.one_blas_thread():  # query-sized products: one thread
                manifest = _estimate(partial, manifest, queries, truth, min_recall, nprobe, candidates)
        manifest["build_seconds"] = clock.seconds
        write_manifest(partial, manifest)
        (partial / "pseudo_queries.npy").unlink(missing_ok=True)
        (partial / PROGRESS_NAME).unlink(missing_ok=True)
        out.finalize()
    return manifest


class _StageClock:
    """Seconds spent per build stage in this run (a resumed build counts only what it did): ``with clock(name):``.

    Why: the build's cost is a handful of dense products per vector plus fixed costs (training, the estimate);
    the manifest's ``build_seconds`` says which one dominates on a given machine without a profiler."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + time.perf_counter() - start

    @property
    def seconds(self) -> dict[str, float]:
        return {stage: round(value, 3) for stage, value in self._seconds.items()}


def _check_block(block: DocumentBlock, dimension: int, first: int) -> None:
    if block.rows.ndim != 2 or block.rows.shape[1] != dimension:
        raise ValueError(f"document {first}: vectors of shape {list(block.rows.shape)}, expected [n, {dimension}]")
    if len(block.ids) != len(block.lengths) or int(block.lengths.sum()) != len(block.rows) or (block.lengths < 1).any():
        raise ValueError(f"documents {first}..: ids, vector counts and rows disagree (every document needs a vector)")
    if not np.isfinite(block.rows).all():
        raise ValueError(f"documents {first}..{first + len(block.ids) - 1}: NaN or infinite values")


def _train(source: DocumentSource, partial: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    documents = source.sample(options["train_docs"], options["seed"])
    count = len(documents)
    sample = np.concatenate(documents)
    estimated_vectors = len(sample) / count * source.num_docs
    nlist = options["nlist"] or default_cells(int(estimated_vectors))
    codec, facts = train_warp_codec(
        sample,
        reduced_dimension=options["reduced_dimension"],
        residual=options["residual"],
        bits=options["bits"],
        subvector_dims=options["subvector_dims"],
        nlist=nlist,
        rerank_tier=options["rerank_tier"],
        seed=options["seed"],
        cell_vectors=_cell_sample(source, count, len(sample), nlist, options["seed"]),
    )
    codec.save(partial / layout.CODEC_NAME)
    if options["estimate_queries"]:
        queries, _ = pseudo_queries(
            documents,
            options["estimate_queries"],
            options["query_vectors"],
            options["perturbation"],
            options["seed"],
            pool=sample,
        )
        np.save(partial / "pseudo_queries.npy", queries)
    facts["train_docs"] = int(count)
    logger.info(
        "trained codec: %d -> %d dims keep %.1f%% of the energy, %d cells, %s residual codes of %d bytes",
        codec.dimension,
        codec.reduced_dimension,
        100 * facts["energy_kept"],
        codec.nlist,
        codec.residual.upper(),
        codec.code_bytes,
    )
    return facts


CELL_SAMPLE_BLOCK_DOCS = 4096
"""Documents drawn at a time for the k-means cells beyond the codec's sample (~0.9 GB of floats at 3584 x 16)."""


def _cell_sample(source: DocumentSource, docs: int, vectors: int, nlist: int, seed: int) -> Iterator[np.ndarray]:
    """More documents for the k-means cells where the codec's sample (``docs`` documents, ``vectors`` vectors) is
    too small for ``nlist`` cells of :data:`TRAIN_POINTS_PER_CELL`; drawn in blocks (each with a fresh seed: a
    document drawn twice only weighs twice in k-means) so that only their projections are kept."""
    missing = nlist * TRAIN_POINTS_PER_CELL - vectors
    if missing <= 0 or docs >= source.num_docs:
        return
    extra_docs = min(int(np.ceil(missing * docs / max(vectors, 1))), source.num_docs - docs)
    for number, start in enumerate(range(0, extra_docs, CELL_SAMPLE_BLOCK_DOCS)):
        documents = source.sample(min(CELL_SAMPLE_BLOCK_DOCS, extra_docs - start), seed + 1 + number)
        if documents:
            yield np.concatenate(documents)


def _finish_layout(partial: Path, codec: WarpCodec, num_vectors: int, num_docs: int) -> None:
    """Cell-major codes, document numbers, each vector's cell-major row, cell and document offsets; the re-rank
    tier's header."""
    cells = np.fromfile(partial / _CELLS_TMP, dtype="<i4")
    ends = np.fromfile(partial / _ENDS_TMP, dtype="<i8")
    if len(cells) != num_vectors or len(ends) != num_docs:
        raise ValueError(
            f"{partial}: {len(cells)} cells / {len(ends)} offsets for {num_vectors} vectors / {num_docs} documents"
        )
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    np.save(partial / layout.OFFSETS_NAME, offsets)
    order = np.argsort(cells, kind="stable")
    np.save(
        partial / layout.CELL_OFFSETS_NAME, np.concatenate([[0], np.cumsum(np.bincount(cells, minlength=codec.nlist))])
    )
    doc_of_row = np.repeat(np.arange(num_docs, dtype=np.int32), np.diff(offsets))
    np.save(partial / layout.DOC_NUMBERS_NAME, doc_of_row[order])
    del doc_of_row
    doc_rows = np.empty(num_vectors, dtype=np.int32)
    doc_rows[order] = np.arange(num_vectors, dtype=np.int32)  # vector i (document order) is row doc_rows[i]
    np.save(partial / layout.DOC_ROWS_NAME, doc_rows)
    del doc_rows
    staged = np.memmap(partial / _CODES_TMP, dtype=np.uint8, mode="r", shape=(num_vectors, codec.code_bytes))
    final = np.lib.format.open_memmap(partial / layout.CODES_NAME, "w+", np.uint8, (num_vectors, codec.code_bytes))
    for lo in range(0, num_vectors, 1 << 20):
        final[lo : lo + (1 << 20)] = staged[order[lo : lo + (1 << 20)]]
    final.flush()
    del final, staged
    if codec.has_rerank_tier:
        with open(partial / layout.RERANK_NAME, "r+b") as handle:
            handle.write(_npy_header(np.dtype(np.uint8), (num_vectors, codec.rerank_bytes)))
    for name in (_CELLS_TMP, _CODES_TMP, _ENDS_TMP):
        (partial / name).unlink()


def _manifest(
    source: DocumentSource,
    codec: WarpCodec,
    facts: Mapping[str, Any],
    num_docs: int,
    num_vectors: int,
    nprobe: int,
    candidates: int,
) -> dict[str, Any]:
    return build_manifest(
        layout.KIND,
        source.encoder_settings,
        num_docs,
        dimension=codec.dimension,
        num_vectors=num_vectors,
        codec={**codec.describe(), **facts},
        search={"nprobe": int(nprobe), "candidates": int(candidates), "rerank": 0},
        **source.manifest_extra,
    )


def recall_at(hits: list[np.ndarray], truth: np.ndarray) -> np.ndarray:
    """Per-query share of the exact top-``depth`` found in ``hits`` (doc numbers)."""
    return np.array([len(set(h.tolist()) & set(t.tolist())) / len(t) for h, t in zip(hits, truth)])


def tune_search(
    searcher: Any,
    queries: np.ndarray,
    truth: np.ndarray,
    *,
    nprobe: int | None = None,
    candidates: int | None = None,
    tolerance: float = TUNE_TOLERANCE,
    worst_tolerance: float = TUNE_WORST_TOLERANCE,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick the search defaults from the pseudo-queries: ``(chosen setting, every setting measured)``.

    Every ``nprobe`` of :data:`NPROBE_GRID` (cut at ``nlist``) x ``candidates`` of :data:`CANDIDATE_GRID` is
    measured (one pass per ``nprobe``: :meth:`~..search.warp_index.WarpSearcher.rank_settings`); the default is
    the cheapest whose estimated recall@100 is within ``tolerance`` of the best one's, and whose worst query is
    within ``worst_tolerance`` of the best worst query's (:func:`choose_default`). ``nprobe`` or
    ``candidates`` given: that one is kept and only the other is tuned. Where the index has a re-rank tier, each
    ``nprobe`` is also measured with re-rank 1000, and the chosen setting with each re-rank depth.

    Why tune per collection: where recall stops growing depends on the data (B9: at 100k LLM-like passages
    nprobe 8 and 500 candidates reach the recall of 64 and 2,000 in a quarter of the time; at 20k, where a
    query's exact top-100 spans several topics, recall still grows up to nprobe 64). The cost model counts codes
    read: probed codes, plus :data:`EXACT_CODE_COST` per code of a candidate re-scored through ``doc_rows``
    (random reads), so the choice does not depend on the machine's load during the build.
    """
    depth = truth.shape[1]
    index = searcher.index
    vectors_per_doc = index.num_vectors / max(index.num_docs, 1)
    nprobes = [int(nprobe)] if nprobe else sorted({min(p, index.codec.nlist) for p in NPROBE_GRID})
    if candidates is not None:
        counts = [int(candidates)]
    else:
        counts = sorted({min(c, index.num_docs) for c in CANDIDATE_GRID})
    reranks = (DEFAULT_RERANK_DEPTHS[-1],) if index.rerank_codes is not None else ()
    rows: list[dict[str, Any]] = []

    def measure(probes: int, counts: list[int], reranks: tuple[int, ...]) -> list[dict[str, Any]]:
        passes = [searcher.rank_settings(q, depth, probes, counts, reranks) for q in queries]
        probed = float(np.mean([p.probed_codes for p in passes]))
        found = np.array([p.warp_candidates for p in passes], dtype=np.float64)
        out = []
        for setting in passes[0].rankings:
            count, rerank = setting
            per_query = recall_at([p.rankings[setting] for p in passes], truth)
            kept = max(count, rerank, depth)
            exact_codes = float(np.mean(np.minimum(found, kept))) * vectors_per_doc if count else 0.0
            out.append(
                {
                    "nprobe": probes,
                    "candidates": count,
                    "rerank": rerank,
                    "recall": float(per_query.mean()),
                    "min": float(per_query.min()),
                    "cost": round(probed + EXACT_CODE_COST * exact_codes),
                }
            )
        return out

    for probes in nprobes:
        rows += measure(probes, counts, reranks)
    chosen = choose_default(rows, tolerance, worst_tolerance)
    if reranks:
        seen = {(row["nprobe"], row["candidates"], row["rerank"]) for row in rows}
        rows += [
            row
            for row in measure(chosen["nprobe"], [chosen["candidates"]], DEFAULT_RERANK_DEPTHS)
            if row["rerank"] and (row["nprobe"], row["candidates"], row["rerank"]) not in seen
        ]
    return chosen, rows


def choose_default(
    rows: list[dict[str, Any]], tolerance: float = TUNE_TOLERANCE, worst_tolerance: float = TUNE_WORST_TOLERANCE
) -> dict[str, Any]:
    """The cheapest small-tier row (``rerank`` 0) within ``tolerance`` of the best mean recall and, among those,
    within ``worst_tolerance`` of the best worst-query recall (:data:`TUNE_WORST_TOLERANCE` says why)."""
    small = [row for row in rows if row["rerank"] == 0]
    best = max(row["recall"] for row in small)
    near = [row for row in small if row["recall"] >= best - tolerance]
    best_worst = max(row["min"] for row in near)  # among these, so that one row always passes both
    return min(
        (row for row in near if row["min"] >= best_worst - worst_tolerance),
        key=lambda row: (row["cost"], row["nprobe"], row["candidates"]),
    )


def choose_rerank(rows: list[dict[str, Any]], default: dict[str, Any], min_recall: float) -> dict[str, Any]:
    """The default search with the re-rank tier where the small tier alone falls short of ``min_recall``.

    ``default`` (:func:`choose_default`) is kept when it reaches ``min_recall`` or no re-rank row does; otherwise
    the re-rank row reaching it with the fewest documents re-scored, then the fewest codes read. Why fewest
    re-scored first: each one reads ``K x H`` bytes of the SQ8 tier from disk, which the codes-read cost leaves out
    (B9 at 100k: re-rank 400 at nprobe 64 takes 27 ms, the small tier alone 13 ms). Why at all: an index built
    with the tier, whose small codes cannot order the collection (B9 at 1M: 0.59), should not need its user to
    read the build log to get the recall the tier was built for."""
    if default["recall"] >= min_recall:
        return default
    reaching = [row for row in rows if row["rerank"] and row["recall"] >= min_recall]
    return min(reaching, key=lambda row: (row["rerank"], row["cost"])) if reaching else default


def _estimate(
    partial: Path,
    manifest: dict[str, Any],
    queries: np.ndarray,
    truth: RunningTop,
    min_recall: float,
    nprobe: int | None,
    candidates: int | None,
) -> dict[str, Any]:
    from ..search.warp_index import WarpSearcher

    searcher = WarpSearcher(partial)
    small_default, rows = tune_search(searcher, queries, truth.docs, nprobe=nprobe, candidates=candidates)
    default = choose_rerank(rows, small_default, min_recall)
    search = {**manifest["search"], "nprobe": default["nprobe"], "candidates": default["candidates"]}
    search["rerank"] = default["rerank"]
    search["tuned"] = [name for name, given in (("nprobe", nprobe), ("candidates", candidates)) if given is None]
    search["tuned"] += ["rerank"] if default["rerank"] else []
    manifest = {
        **manifest,
        "search": search,
        "recall_estimate": {
            "depth": RECALL_DEPTH,
            "queries": int(len(queries)),
            "query_vectors": int(queries.shape[1]),
            "documents": int(manifest["num_docs"]),
            "tolerance": {"mean": TUNE_TOLERANCE, "worst_query": TUNE_WORST_TOLERANCE},
            "default": default,
            "small_tier_default": small_default,
            "settings": rows,
        },
    }
    logger.info(
        "estimated recall@%d (%d pseudo-queries, exact MaxSim over all %d documents): small tier at nprobe %d, "
        "candidates %d: %.3f (best measured %.3f); re-rank tier: %s",
        RECALL_DEPTH,
        len(queries),
        manifest["num_docs"],
        small_default["nprobe"],
        small_default["candidates"],
        small_default["recall"],
        max(row["recall"] for row in rows if row["rerank"] == 0),
        "; ".join(f"nprobe {r['nprobe']} rerank {r['rerank']}: {r['recall']:.3f}" for r in rows if r["rerank"])
        or "none",
    )
    if default["rerank"]:
        logger.warning(
            "the small tier alone reaches an estimated recall@%d of %.3f, below --min-recall %.2f: the default "
            "search re-ranks %d documents from the re-rank tier (nprobe %d, candidates %d, estimated %.3f); "
            "search with --rerank 0 for the small tier alone",
            RECALL_DEPTH,
            small_default["recall"],
            min_recall,
            default["rerank"],
            default["nprobe"],
            default["candidates"],
            default["recall"],
        )
    elif default["recall"] < min_recall:
        # cheapest first, settings without the re-rank tier (whose 3,584-byte reads the cost leaves out) before it
        better = sorted((r for r in rows if r["recall"] >= min_recall), key=lambda r: (r["rerank"] > 0, r["cost"]))
        hint = (
            "search with "
            + " or ".join(
                f"--nprobe {r['nprobe']} --candidates {r['candidates']}"
                + (f" --rerank {r['rerank']}" if r["rerank"] else "")
                for r in better[:2]
            )
            if better
            else "build with a larger --dim or a smaller --subvector-dims, or search with a larger --nprobe and --rerank"
        )
        logger.warning(
            "estimated recall@%d of the default search is %.3f, below --min-recall %.2f: %s",
            RECALL_DEPTH,
            default["recall"],
            min_recall,
            hint,
        )
    return manifest


def compress_multivector_warp(
    input_dir: str | os.PathLike, output_dir: str | os.PathLike, **options: Any
) -> dict[str, Any]:
    """``index compress``: a ``multi-warp`` folder from a float ``multi`` folder (options of :func:`build_warp_index`)."""
    source = FolderSource(input_dir)
    manifest_extra = dict(source.manifest_extra)
    manifest_extra["source"] = os.path.relpath(source.folder.directory.resolve(), Path(output_dir).resolve())
    source.manifest_extra = manifest_extra
    return build_warp_index(source, output_dir, **options)

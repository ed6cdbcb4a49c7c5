"""Compressed or approximate (ANN) FAISS indexes built from a flat dense folder, streaming.

Why not ``python -m pyserini.index.faiss``: at the real dimensions (3584 for Dream-7B, 4096 for LLaDA-8B) it
does not scale. It reads every vector into a Python list, has no IVF, and its default ``--pq-m 192`` divides
neither 3584 nor 4096. This builder

* reads the ``dense`` folder's ``IndexFlatIP`` file in chunks (plain file reads behind the FAISS header), so
  no more than one chunk of float32 vectors and the training sample are in memory, whatever the corpus size;
  the index being built holds only the compressed codes (``bytes_per_vector`` each, recorded in the manifest);
* trains the codec on an evenly spread, seeded sample of ``train_size`` vectors, then adds the vectors chunk by
  chunk in document order (the ``docid`` file is copied unchanged);
* writes ``OUT/index`` + ``OUT/docid`` + ``OUT/manifest.json`` (kind ``dense-ann``) into ``OUT.partial-*`` and
  renames it to ``OUT`` only once complete.

The output opens with Pyserini's own ``FaissSearcher(OUT, query_encoder)`` (it reads ``index`` with
``faiss.read_index``, any index type); :func:`pyserini_diffretriever.search.open_searcher` also applies the
search parameters the manifest records (``nprobe`` for IVF, ``efSearch`` for HNSW) and refuses a query encoder
that does not match the documents, exactly as for the flat folder.

Codecs (``index_factory`` strings, inner-product metric)
--------------------------------------------------------
* default (no flag): :data:`DEFAULT_FACTORY` (``IVF{nlist},RaBitQ``), chosen by measurement at dimension 3584
  (README, "Dense indexes at scale"; ``benchmarks/b5_dense.py``): the best recall of the codecs within 512 bytes
  per vector; :data:`HIGH_RECALL_FACTORY` when recall@100 >= 0.95 against the flat index is required;
* ``--pq``: ``PQ{m}x{nbits}`` (Pyserini's ``IndexPQ``); ``--hnsw``: ``HNSW{M}`` (``IndexHNSWFlat``, not
  compressed); both: ``HNSW{M}_PQ{m}x{nbits}`` (``IndexHNSWPQ``), as in ``pyserini.index.faiss``;
* ``--factory``: any FAISS factory string (``{nlist}`` in it is replaced by the chosen list count, ``{pq_m}`` by
  :func:`default_pq_m`), e.g. ``OPQ64,IVF65536,PQ64``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..layouts import DOCID_FILE, FAISS_INDEX_FILE
from ..writers.atomic import atomic_output_dir, check_output_free
from ..writers.base import SKIPPED_REPORT_NAME, WriterError
from ..writers.faiss import FlatHeader, read_flat_header
from ..writers.manifest import build_manifest, read_manifest, write_manifest
from ..writers.verify import verify_output

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FACTORY",
    "DEFAULT_NPROBE",
    "DenseIndexError",
    "build_faiss_index",
    "default_nlist",
    "factory_string",
    "iter_flat_vectors",
]

DEFAULT_FACTORY = "IVF{nlist},RaBitQ"
"""Default codec: IVF coarse quantiser + 1-bit RaBitQ codes of the residuals (dimension / 8 + 8 bytes per vector,
464 at 3584 with the IVF id), the best recall@100 of the measured codecs that fit 512 bytes (README)."""

HIGH_RECALL_FACTORY = "IVF{nlist},RaBitQ,Refine(SQ8)"
"""Recommended when recall@100 >= 0.95 is required: RaBitQ candidates re-ranked with 8-bit scalar codes
(``k_factor`` x k candidates), about 4 KB per vector at 3584 (vs 14 KB flat)."""

DEFAULT_NPROBE = 64
"""Default IVF lists probed per query (recorded in the manifest; override at search time)."""

DEFAULT_EF_SEARCH = 256
"""Default HNSW ``efSearch`` recorded in the manifest."""

DEFAULT_K_FACTOR = 4
"""Default ``k_factor`` of a ``Refine(...)`` index: candidates re-ranked = ``k_factor * k``."""

RABITQ_QUERY_BITS = 8
"""Query quantisation bits of RaBitQ indexes (FAISS's default is 4; 8 is slightly more accurate, same codes)."""

DEFAULT_PQ_M = 256
"""``--pq-m`` default: divides both real dimensions (3584 = 256 x 14, 4096 = 256 x 16)."""

DEFAULT_HNSW_M = 32
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_TRAIN_SIZE = 65536
DEFAULT_CHUNK_SIZE = 8192


class DenseIndexError(ValueError):
    """The input cannot be indexed with the requested codec, or the built index is inconsistent."""


def default_nlist(num_docs: int, train_size: int) -> int:
    """IVF list count: the power of two nearest ``4 * sqrt(num_docs)``, at most ``train_size / 39``.

    FAISS wants at least 39 training points per centroid; fewer lists than that would be trained on too few.
    """
    target = 4 * math.sqrt(max(num_docs, 1))
    nlist = 2 ** max(0, round(math.log2(target)))
    return int(max(1, min(nlist, train_size // 39)))


def default_pq_m(dimension: int) -> int:
    """The largest divisor of ``dimension`` that is at most ``min(DEFAULT_PQ_M, dimension // 2)``."""
    limit = max(1, min(DEFAULT_PQ_M, dimension // 2))
    return max(m for m in range(1, limit + 1) if dimension % m == 0)


def factory_string(
    dimension: int,
    *,
    factory: str | None = None,
    hnsw: bool = False,
    M: int = DEFAULT_HNSW_M,
    pq: bool = False,
    pq_m: int = DEFAULT_PQ_M,
    pq_nbits: int = 8,
    nlist: int = 1,
) -> str:
    """The FAISS ``index_factory`` string for the flags of :func:`build_faiss_index` (module docstring).

    Raises
    ------
    DenseIndexError
        ``--factory`` combined with ``--hnsw``/``--pq``, or a PQ ``m`` that does not divide ``dimension``.
    """
    if factory is not None and (hnsw or pq):
        raise DenseIndexError("give either a --factory string or --hnsw/--pq, not both")
    if pq and pq_m < 1:
        raise DenseIndexError(f"--pq-m must be >= 1, got {pq_m}")
    if pq and dimension % pq_m:
        divisors = [m for m in (64, 112, 128, 224, 256, 448, 512) if dimension % m == 0]
        raise DenseIndexError(
            f"--pq-m {pq_m} does not divide the dimension {dimension}; PQ splits each vector into m equal "
            f"sub-vectors (choose e.g. {', '.join(map(str, divisors)) or 'a divisor of the dimension'})"
        )
    if pq and not 1 <= pq_nbits <= 16:
        raise DenseIndexError(f"--pq-nbits must be in 1..16, got {pq_nbits}")
    if (hnsw or pq) is False:
        spec = DEFAULT_FACTORY if factory is None else factory
    elif hnsw and pq:
        spec = f"HNSW{M}_PQ{pq_m}x{pq_nbits}"
    elif hnsw:
        spec = f"HNSW{M}"
    else:
        spec = f"PQ{pq_m}x{pq_nbits}"
    return spec.replace("{nlist}", str(int(nlist))).replace("{pq_m}", str(default_pq_m(dimension)))


def _flat_source(folder: Path) -> tuple[Path, FlatHeader]:
    """``(index path, header)`` of a dense folder's flat IP index (header checked)."""
    path = folder / FAISS_INDEX_FILE
    try:
        header = read_flat_header(path)
    except WriterError:
        header = None
    if header is None or header.metric != "inner_product":
        raise DenseIndexError(
            f"{path}: not a flat inner-product FAISS index (IndexFlatIP); build compressed indexes from the "
            "flat `dense` folder written by `python -m pyserini_diffretriever.encode`"
        )
    return path, header


def iter_flat_vectors(
    folder: str | os.PathLike, chunk_size: int = DEFAULT_CHUNK_SIZE, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Yield the float32 rows ``start..stop`` of a dense folder's ``index`` in ``[<= chunk_size, d]`` chunks.

    Plain reads behind the FAISS header (no memory map, so the rows read do not stay in this process' memory).
    """
    path, header = _flat_source(Path(folder))
    dimension = header.dimension
    stop = header.num_vectors if stop is None else min(stop, header.num_vectors)
    row_bytes = 4 * dimension
    with open(path, "rb") as handle:
        handle.seek(header.row_offset(start))
        for begin in range(start, stop, chunk_size):
            count = min(chunk_size, stop - begin)
            data = handle.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise DenseIndexError(f"{path}: ended early at vector {begin} (truncated)")
            yield np.frombuffer(data, dtype="<f4").reshape(count, dimension)


def _sample_rows(path: Path, header: FlatHeader, size: int, seed: int) -> np.ndarray:
    """``size`` rows drawn without replacement (seeded), read in file order."""
    ntotal, dimension = header.num_vectors, header.dimension
    if size >= ntotal:
        rows = np.arange(ntotal)
    else:
        rows = np.sort(np.random.default_rng(seed).choice(ntotal, size=size, replace=False))
    sample = np.empty((len(rows), dimension), dtype=np.float32)
    row_bytes = 4 * dimension
    with open(path, "rb") as handle:
        for i, row in enumerate(rows):
            handle.seek(header.row_offset(int(row)))
            sample[i] = np.frombuffer(handle.read(row_bytes), dtype="<f4")
    return sample


def _search_defaults(index: Any, nprobe: int | None, ef_search: int | None) -> dict[str, int]:
    """Search parameters that apply to ``index`` (``nprobe`` for IVF, ``efSearch`` for HNSW, ``k_factor`` for Refine)."""
    import faiss

    params: dict[str, int] = {}
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        params["nprobe"] = int(min(nprobe or DEFAULT_NPROBE, ivf.nlist))
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        params["efSearch"] = int(ef_search or DEFAULT_EF_SEARCH)
    if isinstance(faiss.downcast_index(index), faiss.IndexRefine):
        params["k_factor"] = DEFAULT_K_FACTOR
    return params


def _unwrap(index: Any) -> Any:
    """The index inside pre-transforms and a refinement stage (the one holding IVF lists or an HNSW graph)."""
    import faiss

    inner = faiss.downcast_index(index)
    while isinstance(inner, (faiss.IndexPreTransform, faiss.IndexRefine)):
        inner = faiss.downcast_index(inner.index if isinstance(inner, faiss.IndexPreTransform) else inner.base_index)
    return inner


def _hnsw_of(index: Any) -> Any:
    return getattr(_unwrap(index), "hnsw", None)


def _no_polysemous_training(index: Any) -> None:
    """Switch off polysemous training (``index_factory`` enables it for 8-bit PQ): it takes hours at m=256."""
    import faiss

    inner = _unwrap(index)
    storage = getattr(inner, "storage", None)
    for candidate in (inner, faiss.downcast_index(storage) if storage is not None else None):
        if candidate is not None and hasattr(candidate, "do_polysemous_training"):
            candidate.do_polysemous_training = False


def apply_search_parameters(index: Any, params: Mapping[str, Any]) -> None:
    """Set ``nprobe`` / ``efSearch`` / ``k_factor`` (the keys :func:`build_faiss_index` records) on a loaded index."""
    import faiss

    for name, value in params.items():
        if value is None:
            continue
        if name == "k_factor":
            refine = faiss.downcast_index(index)
            if not isinstance(refine, faiss.IndexRefine):
                raise TypeError(f"k_factor applies to Refine(...) indexes, not {type(refine).__name__}")
            refine.k_factor = float(value)
        elif name == "nprobe":
            faiss.extract_index_ivf(index).nprobe = int(value)
        elif name == "efSearch":
            _hnsw_of(index).efSearch = int(value)
        else:
            raise TypeError(f"unknown FAISS search parameter {name!r}")


def bytes_per_vector(index: Any) -> int:
    """Stored bytes per vector: the code, plus the 8-byte id IVF lists keep, plus HNSW links (2 * M * 4 on level 0),
    plus a refinement stage's codes."""
    import faiss

    outer = faiss.downcast_index(index)
    extra = 0
    if isinstance(outer, faiss.IndexRefine):
        extra = int(faiss.downcast_index(outer.refine_index).sa_code_size())
    inner = _unwrap(index)
    if isinstance(inner, faiss.IndexIVF):
        return int(inner.code_size) + 8 + extra
    if getattr(inner, "hnsw", None) is not None:
        storage = faiss.downcast_index(inner.storage)
        return (
            int(storage.sa_code_size()) + 4 * int(faiss.vector_to_array(inner.hnsw.cum_nneighbor_per_level)[1]) + extra
        )
    return int(inner.sa_code_size()) + extra


def _check_positive(**values: int) -> None:
    """Reject sizes below 1 before anything is built, naming the parameter."""
    for name, value in values.items():
        if int(value) < 1:
            raise DenseIndexError(f"{name} must be >= 1, got {value}")


def _new_index(dimension: int, spec: str) -> Any:
    """``faiss.index_factory``, its multi-line C++ error turned into a one-line :class:`DenseIndexError`."""
    import faiss

    try:
        return faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise DenseIndexError(f"invalid FAISS factory string {spec!r}: {str(error).splitlines()[0]}") from None


def _configure_build(index: Any, spec: str, ntotal: int, ef_construction: int, seed: int) -> tuple[Any, Any]:
    """Set the build knobs ``index_factory`` leaves at unsuitable defaults; returns the HNSW and IVF parts (or None).

    Refuses more IVF lists than vectors, which k-means cannot train.
    """
    import faiss

    hnsw_struct = _hnsw_of(index)
    if hnsw_struct is not None:
        hnsw_struct.efConstruction = int(ef_construction)
    _no_polysemous_training(index)
    if hasattr(_unwrap(index), "qb"):
        _unwrap(index).qb = RABITQ_QUERY_BITS
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.cp.seed = seed
        if ntotal < ivf.nlist:
            raise DenseIndexError(f"{spec}: {ivf.nlist} IVF lists for only {ntotal} vectors; use fewer (--nlist)")
    return hnsw_struct, ivf


def _train_and_add(
    index: Any,
    input_dir: Path,
    source: tuple[Path, FlatHeader],
    spec: str,
    *,
    train_size: int,
    chunk_size: int,
    seed: int,
) -> tuple[int, float, float]:
    """Train on a sample, then stream every vector in, so memory stays at one chunk plus the sample.

    ``source`` is :func:`_flat_source`'s ``(path, header)``. Returns the vectors trained on and the seconds to the
    end of training and of adding.
    """
    path, header = source
    ntotal, dimension = header.num_vectors, header.dimension
    started = time.perf_counter()
    trained = 0
    if not index.is_trained:
        sample = _sample_rows(path, header, train_size, seed)
        logger.info("training %s on %d of %d vectors (dimension %d)", spec, len(sample), ntotal, dimension)
        index.train(sample)
        trained = len(sample)
        del sample
    train_seconds = time.perf_counter() - started
    added = 0
    for chunk in iter_flat_vectors(input_dir, chunk_size):
        index.add(chunk)
        added += len(chunk)
        logger.info("added %d/%d vectors", added, ntotal)
    return trained, train_seconds, time.perf_counter() - started


def _index_record(
    index: Any,
    spec: str,
    parts: tuple[Any, Any],
    timings: tuple[int, float, float],
    *,
    M: int,
    ef_construction: int,
    seed: int,
) -> dict[str, Any]:
    """The manifest's ``index`` record; ``index_bytes`` is a placeholder that :func:`_write_ann_folder` fills in."""
    import faiss

    hnsw_struct, ivf = parts
    trained, train_seconds, build_seconds = timings
    return {
        "factory": spec,
        "class": type(faiss.downcast_index(index)).__name__,
        "bytes_per_vector": bytes_per_vector(index),
        "index_bytes": None,
        "train_size": trained,
        "train_seconds": round(train_seconds, 3),
        "build_seconds": round(build_seconds, 3),
        "seed": seed,
        **({"nlist": int(ivf.nlist)} if ivf is not None else {}),
        **({"M": int(M), "ef_construction": int(ef_construction)} if hnsw_struct is not None else {}),
    }


def _write_ann_folder(
    index: Any,
    input_dir: Path,
    output_dir: str | os.PathLike,
    overwrite: bool,
    source: Mapping[str, Any],
    dimension: int,
    record: dict[str, Any],
    search: dict[str, int],
) -> None:
    """Write ``index``, ``docid`` (and the skipped report) and the ``dense-ann`` manifest, all or nothing."""
    import faiss

    with atomic_output_dir(output_dir, overwrite) as partial:
        faiss.write_index(index, str(partial / FAISS_INDEX_FILE))
        shutil.copyfile(input_dir / DOCID_FILE, partial / DOCID_FILE)
        if (input_dir / SKIPPED_REPORT_NAME).is_file():
            shutil.copyfile(input_dir / SKIPPED_REPORT_NAME, partial / SKIPPED_REPORT_NAME)
        extra = {key: source[key] for key in ("query", "num_skipped_records", "corpus") if key in source}
        manifest = build_manifest(
            "dense-ann",
            source.get("encoder"),
            source["num_docs"],
            dimension=dimension,
            shard=(source.get("shard", {}).get("id", 0), source.get("shard", {}).get("num", 1)),
            metric="inner_product",
            index={**record, "index_bytes": (partial / FAISS_INDEX_FILE).stat().st_size},
            search=search,
            source={"path": str(input_dir.resolve()), "kind": "dense", "created": source.get("created")},
            **extra,
        )
        write_manifest(partial, manifest)


def build_faiss_index(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    factory: str | None = None,
    hnsw: bool = False,
    M: int = DEFAULT_HNSW_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    pq: bool = False,
    pq_m: int = DEFAULT_PQ_M,
    pq_nbits: int = 8,
    nlist: int | None = None,
    train_size: int = DEFAULT_TRAIN_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    threads: int | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build a compressed/ANN FAISS index folder from a flat ``dense`` folder, streaming (module docstring).

    Parameters
    ----------
    input_dir, output_dir : str or PathLike
        A ``dense`` folder; the folder to create (``index``, ``docid``, ``manifest.json`` of kind ``dense-ann``).
    factory : str, optional
        FAISS ``index_factory`` string (``{nlist}`` is replaced); default :data:`DEFAULT_FACTORY`.
    hnsw, M, ef_construction, pq, pq_m, pq_nbits
        ``pyserini.index.faiss``-style codec flags (``factory_string``); ``pq_m`` must divide the dimension.
    nlist, train_size, chunk_size : int
        IVF lists (default :func:`default_nlist`); vectors sampled (seeded, held as float32) to train the codec;
        vectors read and added per step.
    threads, nprobe, ef_search : int, optional
        FAISS (OpenMP) threads; search defaults recorded in the manifest (IVF lists probed, HNSW ``efSearch``).
    seed : int
        Sample and k-means seed.
    overwrite : bool
        Replace an existing ``output_dir`` once the new one is complete.

    Returns the written manifest. Raises :class:`ManifestError` (``input_dir`` missing or not a ``dense`` folder),
    :class:`CorruptOutputError` (its files truncated or disagreeing with its manifest) or :class:`DenseIndexError`
    (conflicting flags, a PQ ``m`` that does not divide the dimension, or an invalid factory string).
    """
    import faiss

    input_dir = Path(input_dir)
    source = read_manifest(input_dir, "dense")
    verify_output(input_dir, "dense")
    flat = _flat_source(input_dir)
    ntotal, dimension = flat[1].num_vectors, flat[1].dimension
    _check_positive(train_size=train_size, chunk_size=chunk_size, M=M, nlist=nlist or 1)
    train_size = min(int(train_size), ntotal)
    lists = int(nlist) if nlist else default_nlist(ntotal, train_size)
    spec = factory_string(dimension, factory=factory, hnsw=hnsw, M=M, pq=pq, pq_m=pq_m, pq_nbits=pq_nbits, nlist=lists)
    index = _new_index(dimension, spec)
    check_output_free(output_dir, overwrite)
    if threads:
        faiss.omp_set_num_threads(int(threads))
    parts = _configure_build(index, spec, ntotal, ef_construction, seed)
    timings = _train_and_add(index, input_dir, flat, spec, train_size=train_size, chunk_size=chunk_size, seed=seed)
    if index.ntotal != source["num_docs"]:
        raise DenseIndexError(f"built index holds {index.ntotal} vectors, {input_dir} lists {source['num_docs']}")
    record = _index_record(index, spec, parts, timings, M=M, ef_construction=ef_construction, seed=seed)
    search = _search_defaults(index, nprobe, ef_search)
    _write_ann_folder(index, input_dir, output_dir, overwrite, source, dimension, record, search)
    logger.info(
        "%s index %s: %d vectors, %d bytes/vector, built in %.1f s",
        spec,
        output_dir,
        ntotal,
        record["bytes_per_vector"],
        timings[2],
    )
    return read_manifest(output_dir, "dense-ann")

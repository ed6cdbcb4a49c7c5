"""The token-level FAISS index that generates MaxSim candidates for a multi-vector index.

Why: exact MaxSim over every document costs ``total_vectors x K_q`` dot products per query. ColBERT-style
candidate generation searches each query vector in an approximate index over *all* document vectors and only
re-scores the documents owning the hits. The index lives next to the vectors (``token.index`` plus
``token.index.json`` describing how it was built, so a stale or different one is detected) and is built on the
searcher's first open when missing.

Kinds
-----
``flat``
    ``IndexFlatIP``: exact token search; as costly as exhaustive scoring, so only for small collections, where it
    is built in memory on open instead of being written (it would be a second copy of ``vectors.npy``).
``ivf``
    ``IVF{nlist},Flat`` with inner product: the default for large collections; ``nprobe`` trades speed for recall.
``hnsw``
    ``HNSW{M},Flat`` with inner product; ``ef_search`` trades speed for recall (slow to build).
``auto``
    ``flat`` up to :data:`FLAT_MAX_VECTORS` vectors, ``ivf`` above.
A FAISS ``factory`` string (e.g. ``"IVF4096,SQ8"``) may replace the kind for full control.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..writers.atomic import atomic_write
from ..writers.multivector import sample_rows
from .index_format import IndexFormatError, vectors_fingerprint
from .multivector_index import MultiVectorIndex

logger = logging.getLogger(__name__)

TOKEN_INDEX_FILE = "token.index"
TOKEN_INDEX_META_FILE = "token.index.json"
TOKEN_INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")

FLAT_MAX_VECTORS = 100_000
"""``auto`` uses an exact flat token index up to this many vectors (search cost ~ exhaustive MaxSim anyway)."""

TRAIN_POINTS_PER_LIST = 64
"""IVF k-means training sample: this many vectors per list (FAISS warns below 39)."""

TRAIN_MAX_BYTES = 1 << 30
"""Cap on the float32 training sample (a 3584-dim Dream vector is 14 KB)."""

ADD_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class TokenIndexInfo:
    """How a token index was built (stored as ``token.index.json``)."""

    kind: str
    factory: str
    num_vectors: int
    dimension: int
    vectors_bytes: int
    nlist: int | None = None
    hnsw_m: int | None = None

    def matches(self, index: MultiVectorIndex) -> bool:
        """Whether this token index was built over exactly ``index``'s current vectors."""
        current = vectors_fingerprint(index.index_dir, index.num_vectors, index.dimension)
        return all(getattr(self, key) == value for key, value in current.items())


def resolve_kind(kind: str, num_vectors: int) -> str:
    """Turn ``auto`` into ``flat`` or ``ivf`` from the collection size; validate the others."""
    if kind not in TOKEN_INDEX_KINDS:
        raise ValueError(f"token index kind {kind!r} is not one of {', '.join(TOKEN_INDEX_KINDS)}")
    if kind != "auto":
        return kind
    return "flat" if num_vectors <= FLAT_MAX_VECTORS else "ivf"


def default_nlist(num_vectors: int) -> int:
    """IVF list count: the power of two nearest ``sqrt(num_vectors)``, within [16, 65536].

    About ``sqrt(n)`` lists keeps both the coarse search and each list scan small, and the k-means
    training (``nlist x 64`` points) cheap enough to run on first open.
    """
    if num_vectors <= 0:
        return 16
    return int(min(max(2 ** round(math.log2(math.sqrt(num_vectors))), 16), 65_536))


def default_nprobe(nlist: int) -> int:
    """Lists probed per query vector: ``nlist / 128``, at least 4 (under 1% of the vectors scanned).

    Low on purpose: in the searcher the token hits complement the document-mean candidates, which carry
    most of the recall (measured in the search tests' benchmark notes).
    """
    return int(min(nlist, max(4, nlist // 128)))


def _factory_string(kind: str, num_vectors: int, nlist: int | None, hnsw_m: int) -> tuple[str, int | None]:
    if kind == "flat":
        return "Flat", None
    if kind == "hnsw":
        return f"HNSW{int(hnsw_m)},Flat", None
    lists = int(nlist) if nlist else default_nlist(num_vectors)
    lists = max(1, min(lists, num_vectors))  # k-means needs at least one point per list
    return f"IVF{lists},Flat", lists


def create_token_index(
    index: MultiVectorIndex,
    kind: str = "auto",
    *,
    nlist: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    factory: str | None = None,
    train_size: int | None = None,
    seed: int = 0,
) -> tuple[Any, TokenIndexInfo]:
    """Build a token index over all vectors of ``index`` in memory (see :func:`build_token_index`)."""
    import faiss

    kind = resolve_kind(kind, index.num_vectors)
    if factory:
        description, lists = factory, None
        kind = "factory"
    else:
        description, lists = _factory_string(kind, index.num_vectors, nlist, hnsw_m)
    if index.num_vectors == 0:
        raise IndexFormatError(f"{index.index_dir}: the index holds no vectors; nothing to build a token index over")
    token_index = faiss.index_factory(index.dimension, description, faiss.METRIC_INNER_PRODUCT)
    if kind == "hnsw":
        faiss.downcast_index(token_index).hnsw.efConstruction = int(ef_construction)
    if not token_index.is_trained:
        budget = max(TRAIN_MAX_BYTES // (4 * index.dimension), 40 * (lists or 1))
        size = train_size or min(index.num_vectors, TRAIN_POINTS_PER_LIST * (lists or 256), budget)
        sample = sample_rows(index.vectors, int(min(size, index.num_vectors)), seed)
        logger.info("training token index %s on %d of %d vectors", description, len(sample), index.num_vectors)
        token_index.train(sample)
        del sample
    for block in index.iter_vector_blocks(ADD_BLOCK_ROWS):
        token_index.add(block)
    info = TokenIndexInfo(
        kind=kind,
        factory=description,
        **vectors_fingerprint(index.index_dir, index.num_vectors, index.dimension),
        nlist=lists,
        hnsw_m=int(hnsw_m) if kind == "hnsw" else None,
    )
    return token_index, info


def _write(token_index: Any, info: TokenIndexInfo, index_dir: Path) -> None:
    """Write the index, then its description (a crash never leaves a description of a half-written index)."""
    import faiss

    atomic_write(index_dir / TOKEN_INDEX_FILE, lambda path: faiss.write_index(token_index, path))
    atomic_write(
        index_dir / TOKEN_INDEX_META_FILE, lambda path: Path(path).write_text(json.dumps(asdict(info), indent=2) + "\n")
    )


def build_token_index(
    index_dir: str | Path,
    kind: str = "auto",
    *,
    nlist: int | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    factory: str | None = None,
    train_size: int | None = None,
    seed: int = 0,
) -> Path:
    """Build the token-level FAISS index of a multi-vector index folder and write it next to the vectors.

    Parameters
    ----------
    index_dir : str or Path
        A multi-vector index folder.
    kind : {'auto', 'flat', 'ivf', 'hnsw'}
        Index type (module docstring); ``auto`` picks from the number of vectors.
    nlist : int, optional
        IVF lists (default :func:`default_nlist`).
    hnsw_m : int
        HNSW graph degree.
    ef_construction : int
        HNSW build-time beam.
    factory : str, optional
        A FAISS ``index_factory`` description used instead of ``kind`` (inner-product metric).
    train_size : int, optional
        Training sample size for trained indexes (default ``64 x nlist``, capped by memory).
    seed : int
        Seed of the training sample.

    Returns
    -------
    Path
        The written ``token.index``.
    """
    index = MultiVectorIndex(index_dir)
    token_index, info = create_token_index(
        index,
        kind,
        nlist=nlist,
        hnsw_m=hnsw_m,
        ef_construction=ef_construction,
        factory=factory,
        train_size=train_size,
        seed=seed,
    )
    _write(token_index, info, index.index_dir)
    logger.info("wrote %s (%s over %d vectors)", index.index_dir / TOKEN_INDEX_FILE, info.factory, info.num_vectors)
    return index.index_dir / TOKEN_INDEX_FILE


def read_token_index_info(index_dir: str | Path) -> TokenIndexInfo | None:
    """The description of the token index in ``index_dir``, or ``None`` if there is none (or it is unreadable)."""
    path = Path(index_dir) / TOKEN_INDEX_META_FILE
    if not (path.is_file() and (Path(index_dir) / TOKEN_INDEX_FILE).is_file()):
        return None
    try:
        return TokenIndexInfo(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        logger.warning("%s: unreadable token index description (%s); it will be rebuilt", path, error)
        return None


def load_token_index(
    index: MultiVectorIndex,
    kind: str = "auto",
    *,
    nlist: int | None = None,
    hnsw_m: int = 32,
    factory: str | None = None,
    write: bool = True,
) -> tuple[Any, TokenIndexInfo]:
    """Open the token index of ``index``, building it when it is missing, stale or not the requested kind.

    With ``kind='auto'`` (and no ``factory``) any valid existing token index is used. A newly built index is
    written next to the vectors unless ``write`` is false, it is a flat one chosen by ``auto``, or the folder
    is read-only (then it is kept in memory with a warning).
    """
    import faiss

    info = read_token_index_info(index.index_dir)
    wanted = "factory" if factory else kind
    if info is not None and not info.matches(index):
        logger.warning("%s: token index was built over other vectors; rebuilding", index.index_dir)
        info = None
    if (
        info is not None
        and wanted != "auto"
        and (info.kind != wanted or (factory and info.factory != factory) or (nlist and info.nlist != nlist))
    ):
        logger.info("%s: token index is %s, %s requested; rebuilding", index.index_dir, info.factory, factory or kind)
        info = None
    if info is not None:
        try:
            return faiss.read_index(str(index.index_dir / TOKEN_INDEX_FILE)), info
        except RuntimeError as error:  # FAISS raises RuntimeError for truncated or foreign files
            logger.warning("%s: unreadable %s (%s); rebuilding it", index.index_dir, TOKEN_INDEX_FILE, error)
            if wanted == "auto":  # rebuild what the description says was there
                kind, nlist, hnsw_m = info.kind, info.nlist, info.hnsw_m or hnsw_m
                factory = info.factory if info.kind == "factory" else None
                kind = "auto" if factory else kind
    token_index, info = create_token_index(index, kind, nlist=nlist, hnsw_m=hnsw_m, factory=factory)
    if write and not (kind == "auto" and info.kind == "flat"):
        try:
            _write(token_index, info, index.index_dir)
        except OSError as error:
            logger.warning("%s: cannot write %s (%s); using it from memory", index.index_dir, TOKEN_INDEX_FILE, error)
    return token_index, info


def configure_search(token_index: Any, *, nprobe: int | None, ef_search: int | None) -> None:
    """Set the recall/speed knobs (``nprobe`` for IVF, ``efSearch`` for HNSW), also inside wrapped indexes.

    A knob the index does not have (e.g. ``nprobe`` of a flat index) is ignored.
    """
    import faiss

    space = faiss.ParameterSpace()
    for name, value in (("nprobe", nprobe), ("efSearch", ef_search)):
        if value is None:
            continue
        try:
            space.set_index_parameter(token_index, name, int(value))
        except RuntimeError:  # FAISS raises when the index has no such parameter
            pass

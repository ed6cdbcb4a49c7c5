"""The codec of the cell-major (WARP-style) multi-vector index: projection, centroids, PQ residuals, SQ8 tier.

Two codes per stored vector, for two jobs:

1. **The small tier** (searched): the uncentred projection ``z = P x`` (:func:`.codec.uncentred_projection`,
   448 of 3584 dimensions by default), the nearest of ``nlist`` k-means centroids ``c`` (FAISS ``Kmeans``), and the
   residual ``z - c`` as a code of whole bytes. Two residual codes:

   - ``pq`` (default): a FAISS ``ProductQuantizer`` with 8-bit sub-quantisers, one byte per ``subvector_dims``
     (4) projected dimensions (448 dims -> 112 bytes). ``table[j, b]`` is the query's sub-vector ``j`` times
     sub-centroid ``b``;
   - ``sq``: ColBERTv2's per-dimension buckets, 2 or 4 bits (cutoffs and values are quantiles of the training
     residuals), packed ``8 / bits`` dimensions per byte. ``table[j, b]`` is the sum of ``q_d * weight_d[bucket]``
     over the dimensions packed into byte ``j``.

   Either way a query vector scores a stored vector as ``q . c + sum_j table[j, byte_j]`` -- no vector is rebuilt
   (WARP's implicit decompression, :mod:`.warp_kernel`). Why PQ by default: at the same 112 bytes it leaves about
   half the residual error of 2-bit buckets (0.10 vs 0.18 of the residual's norm on B9's LLM-like geometry) and
   ranks better (exhaustive recall@100 0.70 vs 0.66; 0.97 vs 0.93 of the exact top-100 within its top 400).
2. **The re-rank tier** (read only for the top candidates of a query, from a memory map): every *full* dimension
   as an 8-bit scalar with a per-dimension range (3,584 bytes at ``H = 3584``, half of float16). Why full
   dimension and 8 bits: on a collection whose spectrum has a flat tail, no projection keeps enough of the inner
   product (448 dimensions kept 0.68 of the energy, recall 0.91), and full-dimension 4-bit codes still lost 7% of
   the true top-100 (``shared/spec/scale.md``); 8 bits over every dimension leaves a quantisation error far below
   the gaps between neighbouring documents.

   ``split4`` / ``split2`` (2,240 / 1,344 bytes at ``H = 3584``, ``d = 448``): the projection ``P x`` at 8 bits per
   dimension, then every full dimension at 4 or 2 bits (quantile ranges), scored as ``(P q) . (P x) + q_perp . x``
   with ``q_perp = q - P^T P q`` (:meth:`WarpCodec.rerank_affine`). The coarse full-dimension code only carries
   the part of the score outside the projection, so its error is scaled by ``|q_perp|`` (0.28 of ``|q|`` where
   the projection keeps 0.92 of the energy), and the encoder reuses the projection the small tier computes.
   Why: at 1M passages the codes must order a topic's ~1,000 near-identical passages, whose MaxSim gaps near
   rank 100 are ~5e-4 (B9's generator); the 3,584-byte SQ8 tier would be 57 GB there and 505 GB at MS MARCO.

Everything small lives in one ``codec.npz``; the searcher keeps it in memory (projection ``d x H`` floats,
centroids ``nlist x d``, PQ sub-centroids ``256 x d`` or bucket tables ``d x 2**bits``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .codec import uncentred_projection

DEFAULT_WARP_DIMENSION = 448
"""Projected dimension of the small tier (B5's projection; a 112-byte PQ code)."""

DEFAULT_BITS = 2
"""Bits per projected dimension of the ``sq`` residual code (WARP and ColBERTv2 use 2 or 4)."""

TRAIN_POINTS_PER_CELL = 40
"""k-means sample per cell (FAISS warns below 39)."""

RERANK_TIERS = ("sq8", "split4", "split2", "none")
"""``sq8``: every full dimension at 8 bits (``H`` bytes); ``splitB``: the projection at 8 bits plus every full
dimension at ``B`` bits (``d + H B / 8`` bytes, 2,240 at ``B = 4``); ``none``: no re-rank tier."""

SPLIT_BITS = {"split4": 4, "split2": 2}

SPLIT_RANGE_QUANTILE = 1e-4
"""The split tier's ranges are the 0.01% and 99.99% quantiles of the sample (a value outside is clipped): with 4 or
2 bits, a min-max range would spend its few levels on outliers."""

SPLIT_RANGE_SAMPLE = 32_768
"""Training vectors the split tier's quantiles are taken on (a quantile over 131k x 3584 values costs ~30 s)."""

RESIDUAL_CODES = ("pq", "sq")
"""``pq``: a product quantiser over the residual, one byte (256 sub-centroids) per ``subvector_dims`` projected
dimensions; ``sq``: ColBERTv2's per-dimension 2- or 4-bit buckets."""

DEFAULT_RESIDUAL = "pq"

DEFAULT_SUBVECTOR_DIMS = 4
"""Projected dimensions per PQ byte."""


def default_cells(num_vectors: int) -> int:
    """Cells: the power of two nearest ``2 sqrt(n)`` within [16, 65536].

    Why ``sqrt(n)``: with a fixed ``nprobe``, a query reads ``nprobe * n / nlist`` stored vectors, so the work
    grows like ``sqrt(n)`` (x3.2 from 100k to 1M passages). The factor 2 (PLAID uses ~16 at dim 128) keeps the
    centroid assignment of every vector during the build -- ``d x nlist`` products at ``d = 448`` -- near the cost
    of the projection itself.
    """
    if num_vectors <= 0:
        return 16
    return int(min(max(2 ** round(math.log2(2 * math.sqrt(num_vectors))), 16), 65_536))


def pack_codes(buckets: np.ndarray, bits: int) -> np.ndarray:
    """Bucket indices ``[n, d]`` (values below ``2**bits``) -> packed bytes ``[n, d * bits / 8]``, low bits first."""
    per_byte = 8 // bits
    grouped = buckets.astype(np.uint8).reshape(len(buckets), -1, per_byte)
    packed = np.zeros(grouped.shape[:2], dtype=np.uint8)
    for t in range(per_byte):
        packed |= grouped[:, :, t] << np.uint8(bits * t)
    return packed


def unpack_codes(packed: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``[n, B]`` bytes -> ``[n, B * 8 / bits]`` bucket indices."""
    per_byte = 8 // bits
    mask = np.uint8((1 << bits) - 1)
    parts = [(packed >> np.uint8(bits * t)) & mask for t in range(per_byte)]
    return np.stack(parts, axis=2).reshape(len(packed), -1)


@dataclass
class WarpCodec:
    """A trained codec (module docstring). Arrays are float32.

    Attributes
    ----------
    projection : ``[d, H]`` rows of the uncentred projection.
    centroids : ``[nlist, d]`` k-means centroids in the projected space.
    residual : ``"pq"`` (product quantiser, one byte per sub-vector) or ``"sq"`` (per-dimension buckets).
    bits : bits per projected dimension of ``"sq"`` (2 or 4); 8 (bits per sub-vector code) for ``"pq"``.
    cutoffs : ``[d, 2**bits - 1]`` per-dimension bucket boundaries of the residuals (``"sq"``).
    weights : ``[d, 2**bits]`` per-dimension value of each bucket (``"sq"``).
    pq_centroids : ``[M, 256, d / M]`` the product quantiser's sub-vector centroids (``"pq"``).
    rerank_low, rerank_step : ``[H]`` the re-rank tier's per-dimension origin and step over the full dimension
        (``None``: no tier).
    rerank_bits : bits per full dimension in the re-rank tier (8: ``sq8``; 4 or 2: ``split``).
    rerank_z_low, rerank_z_step : ``[d]`` the split tier's 8-bit code of the projection (``None`` for ``sq8``).
    """

    projection: np.ndarray
    centroids: np.ndarray
    residual: str = "sq"
    bits: int = DEFAULT_BITS
    cutoffs: np.ndarray | None = None
    weights: np.ndarray | None = None
    pq_centroids: np.ndarray | None = None
    rerank_low: np.ndarray | None = None
    rerank_step: np.ndarray | None = None
    rerank_bits: int = 8
    rerank_z_low: np.ndarray | None = None
    rerank_z_step: np.ndarray | None = None

    @property
    def dimension(self) -> int:
        return int(self.projection.shape[1])

    @property
    def reduced_dimension(self) -> int:
        return int(self.projection.shape[0])

    @property
    def nlist(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def code_bytes(self) -> int:
        """Bytes of one small-tier code (the cell number is implied by the cell-major order)."""
        if self.residual == "pq":
            return int(self.pq_centroids.shape[0])
        return self.reduced_dimension * self.bits // 8

    @property
    def has_rerank_tier(self) -> bool:
        return self.rerank_low is not None

    @property
    def rerank_tier(self) -> str:
        """``"none"``, ``"sq8"`` or ``"split4"`` / ``"split2"`` (:data:`RERANK_TIERS`)."""
        if not self.has_rerank_tier:
            return "none"
        return "sq8" if self.rerank_z_low is None else f"split{self.rerank_bits}"

    @property
    def rerank_whole_bytes(self) -> int:
        """Leading bytes of a re-rank row that hold one value each (the rest pack ``8 / rerank_bits`` values)."""
        return self.dimension if self.rerank_z_low is None else self.reduced_dimension

    @property
    def rerank_bytes(self) -> int:
        """Bytes of one re-rank row (0 without a tier)."""
        if not self.has_rerank_tier:
            return 0
        if self.rerank_z_low is None:
            return self.dimension
        return self.reduced_dimension + self.dimension * self.rerank_bits // 8

    # -- encoding -----------------------------------------------------------------------------------------------
    def project(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(vectors, dtype=np.float32) @ self.projection.T

    def assign(self, projected: np.ndarray) -> np.ndarray:
        """Nearest centroid (L2) of each projected vector, int32.

        Through a FAISS flat index (kept): its BLAS search keeps the best centroid per block of products rather
        than materialising ``[n, nlist]`` scores and an argmax over them (~20% of the build's assignment time)."""
        index = getattr(self, "_faiss_centroids", None)
        if index is None:
            import faiss

            index = faiss.IndexFlatL2(self.reduced_dimension)
            index.add(np.ascontiguousarray(self.centroids, dtype=np.float32))
            self._faiss_centroids = index
        _, nearest = index.search(np.ascontiguousarray(projected, dtype=np.float32), 1)
        return nearest[:, 0].astype(np.int32)

    def encode_small(self, vectors: np.ndarray, projected: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Vectors ``[n, H]`` -> ``(cells int32 [n], residual codes uint8 [n, code_bytes])`` (``projected``: their
        projection, when the caller has it)."""
        projected = self.project(vectors) if projected is None else projected
        cells = self.assign(projected)
        residual = np.ascontiguousarray(projected - self.centroids[cells])
        if self.residual == "pq":
            return cells, self._quantizer().compute_codes(residual)
        buckets = np.zeros(residual.shape, dtype=np.uint8)
        for b in range(self.cutoffs.shape[1]):
            buckets += residual > self.cutoffs[:, b]
        return cells, pack_codes(buckets, self.bits)

    def decode_residuals(self, codes: np.ndarray) -> np.ndarray:
        """Codes ``[n, code_bytes]`` -> the residuals they stand for ``[n, d]`` (tests and diagnostics)."""
        codes = np.asarray(codes, dtype=np.uint8)
        if self.residual == "pq":
            return self._quantizer().decode(np.ascontiguousarray(codes))
        return self.weights[np.arange(self.reduced_dimension), unpack_codes(codes, self.bits)]

    def encode_rerank(self, vectors: np.ndarray, projected: np.ndarray | None = None) -> np.ndarray:
        """Vectors ``[n, H]`` -> re-rank rows ``[n, rerank_bytes]`` uint8 (values clipped to the trained ranges):
        ``sq8``: every dimension's byte; ``split``: the projection's bytes, then the full dimensions packed."""
        from .warp_kernel import sq8_codes

        if self.rerank_z_low is None:
            return sq8_codes(vectors, self.rerank_low, self.rerank_step)
        projected = self.project(vectors) if projected is None else projected
        levels = 1 << self.rerank_bits
        full = pack_codes(sq8_codes(vectors, self.rerank_low, self.rerank_step, levels=levels), self.rerank_bits)
        return np.concatenate([sq8_codes(projected, self.rerank_z_low, self.rerank_z_step), full], axis=1)

    def _quantizer(self) -> Any:
        """The FAISS ``ProductQuantizer`` holding :attr:`pq_centroids` (built once, kept)."""
        quantizer = getattr(self, "_faiss_pq", None)
        if quantizer is None:
            import faiss

            subquantizers, _, _ = self.pq_centroids.shape
            quantizer = faiss.ProductQuantizer(self.reduced_dimension, subquantizers, 8)
            faiss.copy_array_to_vector(np.ascontiguousarray(self.pq_centroids, np.float32).ravel(), quantizer.centroids)
            self._faiss_pq = quantizer
        return quantizer

    # -- scoring ------------------------------------------------------------------------------------------------
    def byte_tables(self, projected_queries: np.ndarray) -> np.ndarray:
        """``[K, code_bytes, 256]``: what each byte value at each position adds to a query vector's score."""
        projected_queries = np.asarray(projected_queries, dtype=np.float32)
        if self.residual == "pq":
            subquantizers, _, width = self.pq_centroids.shape
            parts = projected_queries.reshape(len(projected_queries), subquantizers, width)
            return np.ascontiguousarray(np.einsum("kmw,mcw->kmc", parts, self.pq_centroids), dtype=np.float32)
        per_byte = 8 // self.bits
        mask = (1 << self.bits) - 1
        values = projected_queries[:, :, None] * self.weights[None]  # [K, d, 2**bits]
        values = values.reshape(len(projected_queries), -1, per_byte, values.shape[-1])  # [K, B, per_byte, 2**b]
        byte_values = np.arange(256)
        tables = np.zeros((len(projected_queries), values.shape[1], 256), dtype=np.float32)
        for t in range(per_byte):
            tables += values[:, :, t, (byte_values >> (self.bits * t)) & mask]
        return tables

    def rerank_affine(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(weights [K, V], bias [K])`` with ``q . x = values . weights + bias`` for the ``V`` values of every
        re-rank row (:func:`.warp_kernel.unpack_row_values`).

        A value ``c`` decodes to ``low + (c + 1/2) step`` (the bucket centre), so ``q . x = c . (q * step) +
        q . (low + step / 2)``: rows are scored from their bytes, never decoded. ``split``: ``q . x = (P q) . (P x)
        + q_perp . x`` with ``q_perp = q - P^T P q`` (the rows of ``P`` are orthonormal), so the 8-bit projection
        carries the part of the score inside the projection and the coarse full-dimension code only the rest --
        its error is scaled by ``|q_perp|``, 0.28 of ``|q|`` where the projection keeps 0.92 of the energy.
        """
        query = np.asarray(query, dtype=np.float32)
        if self.rerank_z_low is None:
            return query * self.rerank_step, query @ (self.rerank_low + 0.5 * self.rerank_step)
        inside = self.project(query)
        outside = query - inside @ self.projection
        weights = np.concatenate([inside * self.rerank_z_step, outside * self.rerank_step], axis=1)
        bias = inside @ (self.rerank_z_low + 0.5 * self.rerank_z_step) + outside @ (
            self.rerank_low + 0.5 * self.rerank_step
        )
        return weights, bias

    def rerank_scores(self, query: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Inner products ``[n, K]`` of re-rank rows (decoded at the bucket centres) with query vectors ``[K, H]``."""
        from .warp_kernel import unpack_row_values

        weights, bias = self.rerank_affine(query)
        values = unpack_row_values(codes, self.rerank_whole_bytes, self.rerank_bits)
        return values.astype(np.float32) @ weights.T + bias

    # -- persistence --------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        arrays = {
            "projection": self.projection,
            "centroids": self.centroids,
            "residual": np.array(self.residual),
            "bits": np.array(self.bits),
        }
        if self.residual == "pq":
            arrays["pq_centroids"] = self.pq_centroids
        else:
            arrays.update(cutoffs=self.cutoffs, weights=self.weights)
        if self.has_rerank_tier:
            arrays.update(rerank_low=self.rerank_low, rerank_step=self.rerank_step)
        if self.rerank_z_low is not None:
            arrays.update(
                rerank_bits=np.array(self.rerank_bits), rerank_z_low=self.rerank_z_low, rerank_z_step=self.rerank_z_step
            )
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> WarpCodec:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: np.asarray(data[name]) for name in data.files}
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable codec file ({error})") from error
        residual = str(arrays.get("residual", "sq"))  # folders written before PQ codes have per-dimension buckets
        if residual not in RESIDUAL_CODES:
            raise ValueError(f"{path}: unknown residual code {residual!r} (expected one of {RESIDUAL_CODES})")
        needed = {"projection", "centroids", "bits"} | (
            {"pq_centroids"} if residual == "pq" else {"cutoffs", "weights"}
        )
        missing = needed - arrays.keys()
        if missing:
            raise ValueError(f"{path}: codec arrays missing: {sorted(missing)}")

        def floats(name: str) -> np.ndarray | None:
            return arrays[name].astype(np.float32) if name in arrays else None

        return cls(
            projection=floats("projection"),
            centroids=floats("centroids"),
            residual=residual,
            bits=int(arrays["bits"]),
            cutoffs=floats("cutoffs"),
            weights=floats("weights"),
            pq_centroids=floats("pq_centroids"),
            rerank_low=floats("rerank_low"),
            rerank_step=floats("rerank_step"),
            rerank_bits=int(arrays.get("rerank_bits", 8)),
            rerank_z_low=floats("rerank_z_low"),
            rerank_z_step=floats("rerank_z_step"),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "reduced_dimension": self.reduced_dimension,
            "nlist": self.nlist,
            "residual": self.residual,
            "bits": self.bits,
            "code_bytes": self.code_bytes,
            "rerank_tier": self.rerank_tier,
            "rerank_bytes": self.rerank_bytes,
        }


def fit_rerank_tier(
    codec: WarpCodec, sample: np.ndarray, tier: str, *, seed: int = 0, projected: np.ndarray | None = None
) -> WarpCodec:
    """Set ``codec``'s re-rank tier (:data:`RERANK_TIERS`) from ``sample`` ``[n, H]`` (``projected``: its
    projection, when the caller has it); returns the codec. Apart from :func:`train_warp_codec` so that one
    trained codec can be given each tier (``benchmarks/b9_codes.py`` compares them on the same cells and codes)."""
    if tier not in RERANK_TIERS:
        raise ValueError(f"rerank tier must be one of {RERANK_TIERS}, got {tier!r}")
    codec.rerank_low = codec.rerank_step = codec.rerank_z_low = codec.rerank_z_step = None
    codec.rerank_bits = 8
    if tier == "sq8":
        low, high = sample.min(axis=0), sample.max(axis=0)
        margin = 0.05 * (high - low) + 1e-6  # unseen values slightly outside the sample stay representable
        codec.rerank_low = (low - margin).astype(np.float32)
        codec.rerank_step = ((high - low + 2 * margin) / 256).astype(np.float32)
    elif tier in SPLIT_BITS:
        rows = np.random.default_rng([seed, 3]).choice(len(sample), min(len(sample), SPLIT_RANGE_SAMPLE), False)
        projected = codec.project(sample[rows]) if projected is None else projected[rows]
        codec.rerank_bits = SPLIT_BITS[tier]
        codec.rerank_low, codec.rerank_step = _quantile_ranges(sample[rows], 1 << codec.rerank_bits)
        codec.rerank_z_low, codec.rerank_z_step = _quantile_ranges(projected, 256)
    return codec


def _quantile_ranges(values: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column origin and step of ``levels`` buckets spanning the :data:`SPLIT_RANGE_QUANTILE` quantiles."""
    low, high = np.quantile(values, [SPLIT_RANGE_QUANTILE, 1 - SPLIT_RANGE_QUANTILE], axis=0)
    step = np.maximum(high - low, 1e-6) / levels
    return low.astype(np.float32), step.astype(np.float32)


def train_warp_codec(
    sample: np.ndarray,
    *,
    reduced_dimension: int | None = None,
    residual: str = DEFAULT_RESIDUAL,
    bits: int = DEFAULT_BITS,
    subvector_dims: int = DEFAULT_SUBVECTOR_DIMS,
    nlist: int,
    rerank_tier: str = "sq8",
    projection_sample: int = 16_384,
    kmeans_iterations: int = 8,
    pq_iterations: int = 10,
    seed: int = 0,
    cell_vectors: Iterable[np.ndarray] = (),
) -> tuple[WarpCodec, dict[str, Any]]:
    """Train projection, centroids, the residual code and the SQ8 ranges on ``sample`` ``[n, H]``.

    ``nlist`` is capped so that every cell has ~``TRAIN_POINTS_PER_CELL`` training vectors. ``cell_vectors``:
    more float blocks ``[m, H]`` for the k-means cells only, each projected as it arrives. Why: the cells must
    grow like ``sqrt(n)`` (:func:`default_cells`), 8,192 at 1M passages x 16, which needs 327,680 training
    vectors -- 4.7 GB as floats, 0.6 GB projected; without them a fixed sample caps the cells and the work per
    query grows linearly past it (B9 at 1M: 3,276 cells, 6.3x larger than at 100k). Returns the codec and the
    training facts for the manifest (``energy_kept``, sample sizes).

    Iterations: 8 for the cells and 10 for the PQ sub-quantisers (FAISS's defaults are 25) halve the training
    time (38 -> 22 s on 131k x 448 training vectors, 2 cores) for 0.7% more held-out reconstruction error
    (residual x PQ error: 0.1477 -> 0.1487 of the projected norm on B9's LLM-like geometry, issue 17).
    """
    import faiss

    if residual not in RESIDUAL_CODES:
        raise ValueError(f"residual code must be one of {RESIDUAL_CODES}, got {residual!r}")
    if residual == "sq" and bits not in (2, 4):
        raise ValueError(f"bits must be 2 or 4, got {bits}")
    if residual == "pq" and subvector_dims < 1:
        raise ValueError(f"subvector_dims must be >= 1, got {subvector_dims}")
    if rerank_tier not in RERANK_TIERS:
        raise ValueError(f"rerank tier must be one of {RERANK_TIERS}, got {rerank_tier!r}")
    sample = np.asarray(sample, dtype=np.float32)
    if sample.ndim != 2 or len(sample) < 2:
        raise ValueError(f"codec training needs a [n>=2, H] sample, got shape {sample.shape}")
    dimension = sample.shape[1]
    reduced = int(reduced_dimension or min(DEFAULT_WARP_DIMENSION, dimension))
    step = subvector_dims if residual == "pq" else 8 // bits
    if not 1 <= reduced <= dimension or reduced % step:
        what = f"{subvector_dims} dimensions per PQ byte" if residual == "pq" else f"{bits} bits"
        raise ValueError(
            f"projected dimension {reduced} must be between 1 and {dimension} and give whole bytes at {what} "
            f"(a multiple of {step})"
        )
    rng = np.random.default_rng(seed)
    subset = sample if len(sample) <= projection_sample else sample[rng.choice(len(sample), projection_sample, False)]
    projection, energy = uncentred_projection(subset, reduced, seed=seed)
    projected = np.ascontiguousarray(sample @ projection.T)
    blocks = [projected]
    for block in cell_vectors:  # one float block at a time; only its projection is kept
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != dimension:
            raise ValueError(f"cell training vectors must be [m, {dimension}], got shape {block.shape}")
        blocks.append(block @ projection.T)
    cell_sample = np.concatenate(blocks) if len(blocks) > 1 else projected
    del blocks
    cell_train_vectors = len(cell_sample)
    cells = max(1, min(int(nlist), len(cell_sample) // TRAIN_POINTS_PER_CELL or 1))
    kmeans = faiss.Kmeans(reduced, cells, niter=kmeans_iterations, seed=seed, max_points_per_centroid=256)
    kmeans.train(np.ascontiguousarray(cell_sample, dtype=np.float32))
    del cell_sample
    centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
    codec = WarpCodec(projection, centroids, residual=residual, bits=8 if residual == "pq" else bits)
    residuals = np.ascontiguousarray(projected - centroids[codec.assign(projected)])
    if residual == "pq":
        if len(residuals) < 256:
            raise ValueError(
                f"a PQ residual code needs at least 256 training vectors (256 sub-centroids), got {len(residuals)}; "
                "train on more documents or use residual 'sq'"
            )
        subquantizers = reduced // subvector_dims
        quantizer = faiss.ProductQuantizer(reduced, subquantizers, 8)
        quantizer.cp.niter = int(pq_iterations)
        quantizer.train(residuals)
        codec.pq_centroids = faiss.vector_to_array(quantizer.centroids).reshape(subquantizers, 256, subvector_dims)
    else:
        levels = 2**bits
        codec.cutoffs = np.ascontiguousarray(
            np.quantile(residuals, np.arange(1, levels) / levels, axis=0).T, np.float32
        )
        codec.weights = np.ascontiguousarray(
            np.quantile(residuals, (np.arange(levels) + 0.5) / levels, axis=0).T, np.float32
        )
    fit_rerank_tier(codec, sample, rerank_tier, seed=seed, projected=projected)
    facts = {
        "train_vectors": int(len(sample)),
        "projection_vectors": int(len(subset)),
        "cell_train_vectors": int(cell_train_vectors),
        "energy_kept": round(float(energy), 6),
        "kmeans_iterations": int(kmeans_iterations),
        **({"pq_iterations": int(pq_iterations)} if residual == "pq" else {}),
    }
    return codec, facts

"""The multi-vector codec: an uncentred PCA projection, then a FAISS IVF residual quantiser, in one FAISS file.

Why this design (PLAID's, with FAISS parts): a Dream or LLaDA slot vector has 3584 or 4096 dimensions, 7-8 KB
as float16; MS MARCO's 8.8M passages x 16 slots would take a terabyte. Hidden states of large LMs are strongly
anisotropic -- most of their energy lies in a few hundred directions -- so:

1. **Projection** ``x -> P x`` onto the top ``reduced_dimension`` eigenvectors of the *uncentred* second-moment
   matrix ``E[x x^T]`` of a training sample. Uncentred on purpose: the common mean direction carries a large,
   nearly constant part of every inner product, and centring (as FAISS's ``PCAMatrix`` does) would drop it and
   change the scores. For orthonormal ``P``, ``(P q) . (P x)`` is the inner product of the parts of ``q`` and
   ``x`` inside the kept subspace. Stored as a FAISS ``LinearTransform`` so the whole codec is one
   ``faiss.read_index`` away.
2. **Coarse quantiser + residual codes** in the projected space: ``IVF{nlist}`` k-means centroids and a product
   (``PQ{m}x{bits}``) or scalar (``SQ4``/``SQ8``) code of each vector's residual from its centroid -- FAISS's
   ``IndexIVFPQ`` / ``IndexIVFScalarQuantizer`` with ``by_residual``, used through the standalone codec API
   (``sa_encode`` / ``sa_decode``): a code is the list number plus the residual code, ``code_size`` bytes.

Search never needs the float vectors: query vectors are projected once, candidate documents' codes are decoded
into the projected space, and MaxSim runs there (see :mod:`pyserini_diffretriever.search.compressed`).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_REDUCED_DIMENSION = 448
"""Projected dimension (benchmark B5): with SQ8 a 450-byte code. At equal bytes, 256 x SQ8 beat 512 x SQ4."""

DEFAULT_RESIDUAL_CODE = "SQ8"
"""Residual code: 8 bits per projected dimension -> 448 bytes (+1-2 bytes of list number). No slow training,
unlike PQ with many sub-quantisers; at equal bytes, fewer dimensions at 8 bits beat more at 4 bits."""

TRAIN_POINTS_PER_LIST = 40
"""k-means sample per IVF list (FAISS warns below 39)."""

_CODE_PATTERN = re.compile(r"^(PQ\d+(x\d+)?|SQ(4|6|8|fp16)|RQ\d+x\d+)$")


def default_nlist(num_vectors: int) -> int:
    """IVF lists: the power of two nearest ``4 sqrt(n)`` within [64, 65536] (PLAID uses ~``16 sqrt(n)``).

    Fewer lists than PLAID keeps training and the coarse assignment cheap on CPUs; the residual code carries
    the precision.
    """
    if num_vectors <= 0:
        return 64
    return int(min(max(2 ** round(math.log2(4 * math.sqrt(num_vectors))), 64), 65_536))


def check_residual_code(code: str, reduced_dimension: int) -> None:
    """Refuse a residual code FAISS cannot build for ``reduced_dimension`` (with the reason)."""
    if not _CODE_PATTERN.match(code):
        raise ValueError(f"residual code {code!r}: expected PQ<m>[x<bits>], SQ4, SQ6, SQ8, SQfp16 or RQ<m>x<bits>")
    if code.startswith("PQ"):
        m = int(code[2:].split("x")[0])
        if m < 1 or reduced_dimension % m:
            raise ValueError(
                f"residual code {code!r}: {m} sub-quantisers do not divide the projected dimension "
                f"{reduced_dimension} (choose a divisor, e.g. {reduced_dimension // 2} or {reduced_dimension // 4})"
            )


def uncentred_projection(
    sample: np.ndarray, reduced_dimension: int, iterations: int = 6, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Top eigenvectors of ``sample^T sample`` as rows ``[reduced_dimension, D]``, and the energy share they keep.

    Why subspace iteration rather than a full ``eigh``: a dense 3584 x 3584 eigendecomposition takes minutes on
    two cores, while a few block power iterations on the second-moment matrix (a fast spectrum decay is what
    makes the projection worthwhile) take seconds and converge on the leading directions.
    """
    data = np.asarray(sample, dtype=np.float32)
    dimension = data.shape[1]
    moment = np.zeros((dimension, dimension), dtype=np.float32)
    for lo in range(0, len(data), 16_384):
        block = data[lo : lo + 16_384]
        moment += block.T @ block
    moment /= len(data)
    if reduced_dimension >= dimension:
        eigenvalues, eigenvectors = np.linalg.eigh(moment.astype(np.float64))
        order = np.argsort(eigenvalues)[::-1]
        return np.ascontiguousarray(eigenvectors[:, order].T, dtype=np.float32), 1.0
    width = min(dimension, reduced_dimension + max(32, reduced_dimension // 4))
    basis = np.random.default_rng(seed).standard_normal((dimension, width)).astype(np.float32)
    from threadpoolctl import threadpool_limits

    for _ in range(iterations):
        product = moment @ basis
        with threadpool_limits(1, user_api="blas"):  # LAPACK's QR of a tall [D, ~1.25 d] block: 10x slower
            basis, _ = np.linalg.qr(product)  # with 2 OpenBLAS threads on a busy 2-core machine (0.5 -> 5 s)
    small = basis.T.astype(np.float64) @ (moment @ basis).astype(np.float64)  # Rayleigh-Ritz
    eigenvalues, rotation = np.linalg.eigh((small + small.T) / 2)
    order = np.argsort(eigenvalues)[::-1][:reduced_dimension]
    vectors = basis.astype(np.float64) @ rotation[:, order]
    kept = float(eigenvalues[order].sum() / max(float(np.trace(moment.astype(np.float64))), 1e-30))
    return np.ascontiguousarray(vectors.T, dtype=np.float32), kept


@dataclass
class MultiVectorCodec:
    """A trained codec (module docstring): ``index`` is a FAISS ``IndexPreTransform(LinearTransform, IndexIVF*)``."""

    index: Any

    @property
    def transform(self) -> Any:
        import faiss

        return faiss.downcast_VectorTransform(self.index.chain.at(0))

    @property
    def ivf(self) -> Any:
        """The inner IVF index (projected space)."""
        import faiss

        return faiss.extract_index_ivf(self.index)

    @property
    def dimension(self) -> int:
        """Input (hidden state) dimension."""
        return int(self.index.d)

    @property
    def reduced_dimension(self) -> int:
        return int(self.ivf.d)

    @property
    def code_size(self) -> int:
        """Bytes per stored vector (list number + residual code)."""
        return int(self.index.sa_code_size())

    @property
    def nlist(self) -> int:
        return int(self.ivf.nlist)

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Hidden-state vectors ``[n, D]`` -> projected ``[n, reduced_dimension]`` float32."""
        return self.transform.apply(np.ascontiguousarray(vectors, dtype=np.float32))

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors ``[n, D]`` -> codes ``[n, code_size]`` uint8."""
        return self.index.sa_encode(np.ascontiguousarray(vectors, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> reconstructed vectors in the *projected* space ``[n, reduced_dimension]`` float32."""
        return self.ivf.sa_decode(np.ascontiguousarray(codes, dtype=np.uint8))

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the codec."""
        return {
            "dimension": self.dimension,
            "reduced_dimension": self.reduced_dimension,
            "nlist": self.nlist,
            "code_size": self.code_size,
            "ivf_class": type(self.ivf).__name__,
        }

    def save(self, path: str | Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | Path) -> MultiVectorCodec:
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as error:
            raise ValueError(f"{path}: not a readable FAISS codec ({error})") from error
        codec = cls(index)
        try:
            codec.transform, codec.ivf  # noqa: B018 - raises for any other index type
        except (RuntimeError, AttributeError) as error:
            raise ValueError(f"{path}: not a multi-vector codec (PCA transform + IVF index): {error}") from error
        return codec

    def empty_search_index(self) -> Any:
        """A copy of the trained, empty IVF index, to receive codes with ``add_sa_codes``."""
        import faiss

        return faiss.clone_index(self.ivf)


def train_codec(
    sample: np.ndarray,
    *,
    reduced_dimension: int | None = None,
    residual_code: str = DEFAULT_RESIDUAL_CODE,
    nlist: int | None = None,
    num_vectors: int | None = None,
    seed: int = 0,
) -> tuple[MultiVectorCodec, dict[str, Any]]:
    """Train the projection, the IVF centroids and the residual code on ``sample`` ``[n, D]``.

    Parameters
    ----------
    sample : np.ndarray
        Training vectors (float16 or float32), drawn from the collection.
    reduced_dimension : int, optional
        Projected dimension (``<= D``; ``D`` keeps every direction); default
        ``min(DEFAULT_REDUCED_DIMENSION, D)``.
    residual_code : str
        FAISS code of the residuals (``PQ<m>x<bits>``, ``SQ4``, ``SQ8``, ``RQ<m>x<bits>``).
    nlist : int, optional
        IVF lists (default :func:`default_nlist` of ``num_vectors``, the collection size).
    num_vectors : int, optional
        Collection size, for the default ``nlist`` (default: the sample size).
    seed : int
        k-means seed (FAISS's own default otherwise), for reproducible codecs.

    Returns
    -------
    tuple
        The codec and training facts for the manifest (``energy_kept``, sample size, factory string).
    """
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    if sample.ndim != 2 or len(sample) == 0:
        raise ValueError(f"codec training needs a non-empty [n, D] sample, got shape {sample.shape}")
    dimension = sample.shape[1]
    reduced_dimension = int(reduced_dimension or min(DEFAULT_REDUCED_DIMENSION, dimension))
    if not 1 <= reduced_dimension <= dimension:
        raise ValueError(f"reduced dimension {reduced_dimension} must be between 1 and the vector size {dimension}")
    check_residual_code(residual_code, reduced_dimension)
    lists = int(nlist or default_nlist(num_vectors or len(sample)))
    lists = max(1, min(lists, len(sample) // TRAIN_POINTS_PER_LIST or 1))
    projection, energy = uncentred_projection(sample, reduced_dimension, seed=seed)
    transform = faiss.LinearTransform(dimension, reduced_dimension, False)
    faiss.copy_array_to_vector(projection.ravel(), transform.A)
    transform.is_trained = True
    factory = f"IVF{lists},{residual_code}"
    inner = faiss.index_factory(reduced_dimension, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(inner)
    ivf.cp.seed = int(seed)
    if hasattr(ivf, "do_polysemous_training"):  # IVFPQ: Hamming-friendly code order is unused and slow to train
        ivf.do_polysemous_training = False
    projected = transform.apply(sample)
    logger.info(
        "training codec: projection %d -> %d keeps %.1f%% of the energy; %s on %d vectors",
        dimension,
        reduced_dimension,
        100 * energy,
        factory,
        len(sample),
    )
    inner.train(projected)
    index = faiss.IndexPreTransform(transform, inner)
    index.is_trained = True  # FAISS's Python wrapper keeps transform and inner alive with index
    facts = {"factory": f"LinearTransform{reduced_dimension},{factory}", "train_vectors": len(sample)}
    facts["energy_kept"] = round(energy, 6)
    return MultiVectorCodec(index), facts

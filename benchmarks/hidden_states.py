"""Synthetic multi-vector collections shaped like LLM hidden states, at the real dimension (3584 / 4096).

Why synthetic: no real Dream/LLaDA weights are reachable here, and random-weight models produce states without
the geometry that decides how well a codec works. Why not isotropic Gaussians: real last-layer states of large
LMs are far from isotropic, and codecs behave very differently on them. The generator reproduces the properties
reported for such states, each with one knob:

1. **A common mean direction (anisotropy).** Ethayarajh (2019) and later work find that contextual states share a
   large common component: two unrelated states have a high cosine. ``mean_norm`` sets it; the default gives an
   average cosine of about 0.45 between vectors of unrelated documents.
2. **A few dimensions with very large magnitude** ("massive activations", Sun et al. 2024; "rogue dimensions",
   Timkey and van Schijndel 2021): ``rogue_dims`` coordinates carry a large share of the mean and of the
   variance.
3. **A decaying spectrum.** The variation around the mean lives mostly in a low-dimensional subspace whose
   variances fall as a power law (``rank`` directions, variance ``i ** -spectrum_decay``), plus an isotropic
   noise floor over all dimensions (``noise``).
4. **Topic clusters**: documents are drawn around ``topics`` topic centres.
5. **Within-document similarity of the K slots**: a document's K vectors come from one text, so they scatter
   around the document's own centre (``slot_spread``), closer to each other than to other documents.

Queries are drawn around a random *target* document (``query_spread``), so each has a meaningful neighbourhood.
Every vector is L2-normalised, as the package's multi-vector encoder stores them.

Two presets, :data:`GEOMETRIES` (the benchmarks' ``--geometry``):

- ``llm`` (the defaults): a steep spectrum. The 448-dim uncentred projection that the compressed multi-vector
  codec uses by default keeps **0.923** of the energy (measured below).
- ``flat``: a flat tail -- a slower spectrum decay (``spectrum_decay`` 0.5) over the same ``rank`` and a stronger
  isotropic noise floor (``noise`` 1.15), with the same mean direction, rogue dimensions, topics and spreads.
  The same projection keeps **0.678** of the energy, like the collection reported in issue 17 (``energy_kept``
  0.68), where ~450-byte codes lose recall. ``rank`` stays 1024, so generating it costs the same as ``llm``.

The energy shares were measured with :func:`pyserini_diffretriever.indexing.codec.uncentred_projection` on 8,192
vectors, one slot of each of 8,192 documents (what a uniform training sample of a large collection holds);
:func:`describe` reports it as ``energy_kept_448``. (A sample of 512 documents x 16 slots overstates it --
0.947 for ``llm`` -- because so few documents span fewer than 448 topic/document directions.)

:func:`describe` measures the resulting statistics (cosines, spectrum share, rogue share); the benchmark report
prints them next to the results, so the geometry a figure was measured on is always stated.
Deterministic: the same arguments give the same arrays, whatever the block size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

BLOCK_DOCS = 512
"""Documents generated per random stream (fixed, so results do not depend on how callers block the work)."""


@dataclass(frozen=True)
class HiddenStateGeometry:
    """The knobs of the generator (module docstring); defaults give the statistics quoted there."""

    dimension: int = 3584
    rank: int = 1024
    spectrum_decay: float = 1.0
    mean_norm: float = 1.1
    rogue_dims: int = 4
    rogue_mean: float = 0.6
    rogue_std: float = 0.25
    topics: int = 1000
    topic_spread: float = 1.0
    doc_spread: float = 0.55
    slot_spread: float = 0.35
    query_spread: float = 0.45
    noise: float = 0.4
    seed: int = 0


GEOMETRIES: dict[str, HiddenStateGeometry] = {
    "llm": HiddenStateGeometry(),
    "flat": HiddenStateGeometry(spectrum_decay=0.5, noise=1.15),
}
"""The benchmark geometries by name (module docstring): ``llm`` keeps 0.92 of the energy at 448 dims, ``flat`` 0.68."""


class HiddenStateGenerator:
    """Draw documents (``[K, D]`` each) and queries from one :class:`HiddenStateGeometry`."""

    def __init__(self, geometry: HiddenStateGeometry = HiddenStateGeometry()) -> None:
        self.geometry = g = geometry
        rng = np.random.default_rng([g.seed, 0])
        basis, _ = np.linalg.qr(rng.standard_normal((g.dimension, g.rank)).astype(np.float32))
        self.scales = (np.arange(1, g.rank + 1, dtype=np.float32) ** (-g.spectrum_decay / 2)).astype(np.float32)
        self.scales /= np.linalg.norm(self.scales)  # unit expected squared norm of one structured draw
        self.scaled_basis = np.ascontiguousarray((basis * self.scales).T)  # [rank, D]: z @ this = B diag(s) z
        self.rogue = rng.choice(g.dimension, size=g.rogue_dims, replace=False)
        mean = rng.standard_normal(g.dimension).astype(np.float32)
        mean[self.rogue] = 0.0
        mean *= np.sqrt(1 - g.rogue_mean**2) / np.linalg.norm(mean)
        mean[self.rogue] = g.rogue_mean / np.sqrt(g.rogue_dims) * np.sign(rng.standard_normal(g.rogue_dims))
        self.mean = (g.mean_norm * mean).astype(np.float32)
        self.topic_centres = g.topic_spread * self._structured(rng, g.topics)

    def _structured(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.standard_normal((n, self.geometry.rank), dtype=np.float32) @ self.scaled_basis

    def _vectors(self, rng: np.random.Generator, centres: np.ndarray, per: int, spread: float) -> np.ndarray:
        """``per`` normalised vectors around each centre: ``[len(centres), per, D]``."""
        g = self.geometry
        n = len(centres)
        out = np.repeat(centres[:, None, :], per, axis=1)
        out += spread * self._structured(rng, n * per).reshape(n, per, -1)
        out += (g.noise / np.sqrt(g.dimension)) * rng.standard_normal(out.shape, dtype=np.float32)
        out[:, :, self.rogue] += g.rogue_std * rng.standard_normal((n, per, g.rogue_dims), dtype=np.float32)
        out += self.mean
        out /= np.linalg.norm(out, axis=2, keepdims=True)
        return out

    def _doc_centres(self, block: int) -> tuple[np.random.Generator, np.ndarray]:
        g = self.geometry
        rng = np.random.default_rng([g.seed, 1, block])
        topics = rng.integers(0, g.topics, size=BLOCK_DOCS)
        return rng, self.topic_centres[topics] + g.doc_spread * self._structured(rng, BLOCK_DOCS)

    def documents(self, num_docs: int, k: int) -> Iterator[np.ndarray]:
        """Yield ``[docs, k, D]`` float32 blocks covering documents ``0..num_docs-1`` in order."""
        for block in range(-(-num_docs // BLOCK_DOCS)):
            rng, centres = self._doc_centres(block)
            count = min(BLOCK_DOCS, num_docs - block * BLOCK_DOCS)
            yield self._vectors(rng, centres[:count], k, self.geometry.slot_spread)

    def queries(self, num_queries: int, k: int, num_docs: int) -> tuple[np.ndarray, np.ndarray]:
        """``([num_queries, k, D] float32, target document of each query)``."""
        g = self.geometry
        rng = np.random.default_rng([g.seed, 2])
        targets = np.sort(rng.choice(num_docs, size=num_queries, replace=num_queries > num_docs))
        centres = np.empty((num_queries, g.dimension), dtype=np.float32)
        for block in np.unique(targets // BLOCK_DOCS):
            _, block_centres = self._doc_centres(int(block))
            chosen = targets // BLOCK_DOCS == block
            centres[chosen] = block_centres[targets[chosen] % BLOCK_DOCS]
        centres += g.query_spread * self._structured(rng, num_queries)
        return self._vectors(rng, centres, k, g.slot_spread), targets


ENERGY_SAMPLE_DOCS = 8192
"""Documents (one slot each) in the sample that :func:`describe` measures ``energy_kept_448`` on."""


def energy_kept(
    generator: HiddenStateGenerator, reduced_dimension: int = 448, sample_docs: int = ENERGY_SAMPLE_DOCS
) -> float:
    """Energy share kept by the codec's uncentred projection to ``reduced_dimension``, on one slot per document.

    One slot of many documents, not all slots of a few: that is what a uniform training sample of a large
    collection holds, and a few documents span too few directions (the share would be overstated).
    """
    from pyserini_diffretriever.indexing.codec import uncentred_projection

    sample = np.concatenate([block[:, 0] for block in generator.documents(sample_docs, 1)])
    return uncentred_projection(sample, reduced_dimension)[1]


def describe(generator: HiddenStateGenerator, k: int = 16, sample_docs: int = 512) -> dict[str, float]:
    """Measured statistics of the geometry (what the report states next to each figure)."""
    docs = next(generator.documents(sample_docs, k))
    flat = docs.reshape(-1, docs.shape[-1]).astype(np.float64)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(docs), size=(2, 4000))
    other = a != b
    across = np.einsum("nd,nd->n", docs[a[other], 0], docs[b[other], 1])
    within = np.einsum("nkd,nkd->nk", docs[:, :1], docs[:, 1:]).ravel()
    centred = flat - flat.mean(axis=0)
    eigen = np.linalg.eigvalsh(centred.T @ centred / len(flat))[::-1]
    rogue_energy = float((flat[:, generator.rogue] ** 2).sum() / (flat**2).sum())
    return {
        "mean_cosine_unrelated": float(across.mean()),
        "mean_cosine_same_document": float(within.mean()),
        "variance_share_top_64_directions": float(eigen[:64].sum() / eigen.sum()),
        "variance_share_top_512_directions": float(eigen[:512].sum() / eigen.sum()),
        "energy_share_rogue_dims": rogue_energy,
        "rogue_dims": int(len(generator.rogue)),
        "energy_kept_448": round(energy_kept(generator), 4),
        "geometry": asdict(generator.geometry),
    }


if __name__ == "__main__":  # pragma: no cover - prints the statistics of each geometry
    import json

    print(json.dumps({name: describe(HiddenStateGenerator(g)) for name, g in GEOMETRIES.items()}, indent=2))

"""Write small index folders in the exact on-disk formats the searchers read (numpy/faiss/JSON only).

Why here and not the project's writers: the search tests pin the *format contract* independently of the writer
code, so a writer bug cannot hide a reader bug (and vice versa). Also fake query encoders and synthetic data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = {"format": "pyserini-diffretriever", "format_version": 1}

ENCODER_SETTINGS = {
    "backbone": "fake/backbone",
    "model_type": "Dream",
    "adapter": None,
    "vocabulary_sha256": "abc123",
    "hidden_size": 8,
    "logits": "unshifted",
    "quantization": 100,
    "k": 16,
    "prompt": "few",
}


def write_manifest(
    folder: Path, kind: str, encoder: Mapping[str, Any] | None = None, name: str = "manifest.json", **extra: Any
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {**FORMAT, "kind": kind, "encoder": dict(ENCODER_SETTINGS if encoder is None else encoder), **extra}
    (folder / name).write_text(json.dumps(manifest, indent=2))
    return folder / name


def write_docids(folder: Path, docids: Sequence[str]) -> None:
    (folder / "docid").write_text("".join(f"{d}\n" for d in docids))


def write_multi_index(
    folder: Path,
    docs: Sequence[np.ndarray],
    docids: Sequence[str],
    encoder: Mapping[str, Any] | None = None,
    dtype=np.float32,
) -> Path:
    """``docs[i]`` is the ``[K_i, H]`` array of document ``docids[i]`` (``K_i`` may be 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    dim = docs[0].shape[1]
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    vectors = np.concatenate([np.asarray(d, dtype=np.float32).reshape(-1, dim) for d in docs])
    np.save(folder / "vectors.npy", vectors.astype(dtype))
    np.save(folder / "offsets.npy", offsets)
    write_docids(folder, docids)
    write_manifest(
        folder,
        "multi",
        encoder,
        num_docs=len(docs),
        dimension=int(dim),
        num_vectors=int(offsets[-1]),
        dtype=np.dtype(dtype).name,
    )
    return folder


def write_dense_index(
    folder: Path, matrix: np.ndarray, docids: Sequence[str], encoder: Mapping[str, Any] | None = None
) -> Path:
    """A FAISS ``IndexFlatIP`` folder exactly as Pyserini's ``FaissSearcher`` reads it, plus a manifest."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(np.ascontiguousarray(matrix, dtype=np.float32))
    faiss.write_index(index, str(folder / "index"))
    write_docids(folder, docids)
    write_manifest(folder, "dense", encoder, num_docs=len(docids), dimension=int(matrix.shape[1]))
    return folder


def write_impact_index(
    folder: Path, vectors: Mapping[str, Mapping[str, int]], encoder: Mapping[str, Any] | None = None
) -> Path:
    """A Lucene impact index built by Pyserini's own indexer (in a child process), plus its manifest."""
    collection = folder.parent / f"{folder.name}-jsonl"
    collection.mkdir(parents=True)
    with open(collection / "docs.jsonl", "w") as handle:
        for docid, vector in vectors.items():
            handle.write(json.dumps({"id": docid, "contents": "", "vector": dict(vector)}) + "\n")
    command = [
        sys.executable,
        "-m",
        "pyserini_diffretriever.run",
        "pyserini.index.lucene",
        "--collection",
        "JsonVectorCollection",
        "--input",
        str(collection),
        "--index",
        str(folder),
        "--generator",
        "DefaultLuceneDocumentGenerator",
        "--threads",
        "1",
        "--impact",
        "--pretokenized",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    write_manifest(folder, "impact-index", encoder, name="diffretriever-manifest.json", num_docs=len(vectors))
    return folder


def random_multi_docs(n_docs: int, dim: int, seed: int, max_vectors: int = 5) -> list[np.ndarray]:
    """Random L2-normalised documents with 1..max_vectors vectors each (negative similarities included)."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n_docs):
        vecs = rng.standard_normal((int(rng.integers(1, max_vectors + 1)), dim)).astype(np.float32)
        docs.append(vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    return docs


def clustered_collection(
    n_docs: int, per_doc: int, dim: int, n_topics: int, seed: int, doc_spread: float = 0.8, vector_spread: float = 0.6
) -> list[np.ndarray]:
    """Random L2-normalised multi-vectors with topic structure, like real embeddings.

    Each text gets a centre near one of ``n_topics`` topic directions (``doc_spread``) and its vectors scatter
    around that centre (``vector_spread``). Calls with the same ``seed`` share the topics, so queries drawn with
    another ``n_docs``/``per_doc`` (another sample stream) fall on the documents' topics.
    """
    topics = _unit(np.random.default_rng(seed).standard_normal((n_topics, dim)))
    rng = np.random.default_rng([seed, n_docs, per_doc])
    centres = _unit(
        topics[rng.integers(n_topics, size=n_docs)] + doc_spread * _unit(rng.standard_normal((n_docs, dim)))
    )
    noise = _unit(rng.standard_normal((n_docs, per_doc, dim)))
    return [v.astype(np.float32) for v in _unit(centres[:, None, :] + vector_spread * noise)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class FakeSingleQueryEncoder:
    """A query encoder with a fixed ``{text: representation}`` table and ``settings()``, as the real one has."""

    def __init__(
        self, table: Mapping[str, Any], representation: str, settings: Mapping[str, Any] | None = None
    ) -> None:
        self.table = dict(table)
        self.representation = representation
        self._settings = {**ENCODER_SETTINGS, **(settings or {}), "representation": representation}
        self.calls = {"encode": 0, "encode_batch": 0}

    def encode(self, query: str, **kwargs: Any) -> Any:
        self.calls["encode"] += 1
        return self.table[query]

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)


class FakeQueryEncoder(FakeSingleQueryEncoder):
    """:class:`FakeSingleQueryEncoder` plus ``encode_batch`` (counted, so tests see which one was used)."""

    def encode_batch(self, queries: Sequence[str], **kwargs: Any) -> Any:
        self.calls["encode_batch"] += 1
        values = [self.table[q] for q in queries]
        return np.stack(values) if self.representation == "dense" else values

"""Impact (sparse) vectors -> JsonVectorCollection files that Anserini indexes as a Lucene impact index.

Layout::

    DIR/vectors/part-00000.jsonl   {"id": "d1", "contents": "", "vector": {"Ġwing": 57, "Ġlift": 12}}
    DIR/vectors/part-00001.jsonl   (a new part every ``records_per_file`` records; only .jsonl files here)
    DIR/empty-vector-docids.txt    only with strict=False and at least one empty vector
    DIR/manifest.json              kind "impact-vectors", quantization

Why the checks: Anserini turns ``{"tok": n}`` into the pseudo-text ``"tok " * n`` and whitespace-tokenizes it
(``--impact --pretokenized``). A float weight is truncated by Jackson's ``asInt`` (0.9 -> 0), a token with
whitespace becomes two terms, a token over 255 characters is split by Lucene, and a document whose weights are
all zero is **silently skipped** by the indexer. So this writer accepts only integer weights (integral floats
are converted), drops zeros, rejects bad tokens, and treats an empty vector as an error (``strict=True``) or
leaves the document out and lists it in ``empty-vector-docids.txt`` with a counted warning (``strict=False``).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any, TextIO

from .base import VectorWriter, WriterError
from .manifest import build_manifest, read_manifest

logger = logging.getLogger(__name__)

VECTORS_DIR = "vectors"
EMPTY_REPORT_NAME = "empty-vector-docids.txt"
MAX_TOKEN_CHARS = 255  # Lucene WhitespaceTokenizer's default maximum token length
DEFAULT_RECORDS_PER_FILE = 100_000


class EmptyVectorError(WriterError):
    """A document whose impact vector has no positive weight (Lucene would silently skip it)."""


def clean_impact_vector(docid: str, vector: Mapping[str, Any]) -> dict[str, int]:
    """Validate one impact vector and return it with plain ``int`` weights and zeros removed.

    Raises
    ------
    WriterError
        For a non-string or whitespace-containing or over-long token, or a negative / non-integer weight.
    """
    if not isinstance(vector, Mapping):
        raise WriterError(f"impact vector of document {docid!r} must be a dict of token -> int, "
                          f"got {type(vector).__name__}")
    cleaned: dict[str, int] = {}
    for token, weight in vector.items():
        if not isinstance(token, str) or not token:
            raise WriterError(f"document {docid!r}: impact token {token!r} is not a non-empty string")
        if any(ch.isspace() for ch in token):
            raise WriterError(f"document {docid!r}: impact token {token!r} contains whitespace "
                              "(Lucene would index it as several terms)")
        if len(token) > MAX_TOKEN_CHARS:
            raise WriterError(f"document {docid!r}: impact token {token[:40]!r}... is longer than "
                              f"{MAX_TOKEN_CHARS} characters (Lucene would split it)")
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise WriterError(f"document {docid!r}: weight of token {token!r} is {weight!r}, not an integer")
        if not isinstance(weight, Integral):
            if not float(weight).is_integer():
                raise WriterError(f"document {docid!r}: weight {weight!r} of token {token!r} is not an integer; "
                                  "quantise impacts before writing (Anserini would truncate it)")
        value = int(weight)
        if value < 0:
            raise WriterError(f"document {docid!r}: negative weight {value} for token {token!r}")
        if value:
            cleaned[token] = value
    return cleaned


class JsonVectorWriter(VectorWriter):
    """Stream ``dict[str, int]`` impact vectors into JsonVectorCollection ``.jsonl`` parts.

    Parameters
    ----------
    directory : str or PathLike
        Output folder (created; must be empty).
    encoder_settings : mapping, optional
        ``encoder.settings()``; stored in the manifest.
    quantization : float
        Scale the integer weights were made with (``w * quantization``, then the encoder's rounding); recorded.
    strict : bool
        Raise :class:`EmptyVectorError` for a document without a positive weight (default); with ``False`` the
        document is left out, counted, and listed in ``empty-vector-docids.txt``.
    records_per_file : int
        Records per ``part-NNNNN.jsonl`` (Anserini indexes files in parallel with ``--threads``).
    shard, manifest_extra
        As for :class:`~pyserini_diffretriever.writers.faiss.FaissFlatWriter`.

    Examples
    --------
    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "impact")
    >>> with JsonVectorWriter(out) as writer:
    ...     writer.write({"id": ["d1"], "vector": [{"Ġwing": 57, "Ġthe": 0}]})
    >>> open(os.path.join(out, "vectors", "part-00000.jsonl")).read()
    '{"id": "d1", "contents": "", "vector": {"Ġwing": 57}}\\n'
    """

    kind = "impact-vectors"

    def __init__(
        self,
        directory: str | os.PathLike,
        encoder_settings: Mapping[str, Any] | None = None,
        quantization: float = 100,
        strict: bool = True,
        records_per_file: int = DEFAULT_RECORDS_PER_FILE,
        shard: tuple[int, int] = (0, 1),
        manifest_extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(directory, encoder_settings, shard, manifest_extra)
        if records_per_file < 1:
            raise ValueError(f"records_per_file must be >= 1, got {records_per_file}")
        self.quantization = quantization
        self.strict = strict
        self.records_per_file = records_per_file
        self.empty_docids: list[str] = []
        self.num_postings = 0
        self._part = -1
        self._in_part = 0
        self._file: TextIO | None = None

    @property
    def vectors_dir(self) -> Path:
        return self.directory / VECTORS_DIR

    def _open(self) -> None:
        self.vectors_dir.mkdir()

    def _next_part(self) -> None:
        if self._file is not None:
            self._file.close()
        self._part += 1
        self._in_part = 0
        self._file = open(self.vectors_dir / f"part-{self._part:05d}.jsonl", "w", encoding="utf-8")

    def write(self, batch_info: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        """Write ``batch_info["vector"]`` (a list of ``dict[str, int]``) for the ids ``batch_info["id"]``."""
        ids = self._check_ids(batch_info)
        vectors = list(batch_info["vector"])
        if len(vectors) != len(ids):
            raise WriterError(f"impact batch has {len(vectors)} vectors for {len(ids)} ids (first id {ids[0]!r})")
        for docid, vector in zip(ids, vectors):
            self.write_record(docid, vector)

    def write_record(self, docid: str, vector: Mapping[str, Any]) -> bool:
        """Write one record; return ``False`` if it was left out as empty (``strict=False`` only)."""
        cleaned = clean_impact_vector(docid, vector)
        if not cleaned:
            if self.strict:
                raise EmptyVectorError(
                    f"document {docid!r} has an empty impact vector (no positive integer weight); Lucene would "
                    "silently skip it. Use a larger k/quantisation, or strict=False (--allow-empty) to leave such "
                    "documents out with a report"
                )
            self.empty_docids.append(docid)
            logger.warning("document %r has an empty impact vector; left out (%d so far)", docid,
                           len(self.empty_docids))
            return False
        if self._file is None or self._in_part >= self.records_per_file:
            self._next_part()
        self._file.write(json.dumps({"id": docid, "contents": "", "vector": cleaned}, ensure_ascii=False) + "\n")
        self._in_part += 1
        self.num_docs += 1
        self.num_postings += len(cleaned)
        return True

    def _close(self, success: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not success:
            return
        if self.num_docs == 0:
            raise WriterError(f"{self.directory}: no documents with a non-empty impact vector were written")
        if self.empty_docids:
            (self.directory / EMPTY_REPORT_NAME).write_text("".join(f"{d}\n" for d in self.empty_docids),
                                                            encoding="utf-8")
            logger.warning("%d document(s) had empty impact vectors and were left out; see %s",
                           len(self.empty_docids), self.directory / EMPTY_REPORT_NAME)

    def _manifest(self) -> dict[str, Any]:
        extra = {"num_skipped_empty": len(self.empty_docids), "num_postings": self.num_postings,
                 "num_files": self._part + 1, **self.manifest_extra}
        return build_manifest("impact-vectors", self.encoder_settings, self.num_docs,
                              quantization=self.quantization, shard=self.shard, **extra)


def vector_files(directory: str | os.PathLike) -> list[Path]:
    """The ``.jsonl`` parts of an impact-vectors folder, in order."""
    return sorted((Path(directory) / VECTORS_DIR).glob("*.jsonl"))


def iter_vector_records(directory: str | os.PathLike):
    """Yield ``(docid, vector)`` from an impact-vectors folder, naming file and line on a bad record."""
    for path in vector_files(directory):
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    yield record["id"], record["vector"]
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise WriterError(f"{path}, line {line_number}: not a JsonVectorCollection record ({error})") \
                        from None


def merge_jsonl_vectors(inputs: Sequence[str | os.PathLike], output: str | os.PathLike,
                        manifest_extra: Mapping[str, Any] | None = None) -> int:
    """Concatenate impact-vectors shard folders (in order) into ``output``; return the document count.

    Records are re-validated (ids unique across shards); empty-vector reports of the shards are concatenated.
    """
    first = read_manifest(inputs[0], "impact-vectors")
    writer = JsonVectorWriter(output, first["encoder"], quantization=first["quantization"],
                              manifest_extra=manifest_extra)
    with writer:
        for folder in inputs:
            for docid, vector in iter_vector_records(folder):
                writer.write({"id": [docid], "vector": [vector]})
            report = Path(folder) / EMPTY_REPORT_NAME
            if report.is_file():
                writer.empty_docids.extend(report.read_text(encoding="utf-8").splitlines())
    return writer.num_docs

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
from typing import Any

from ..layouts import EMPTY_REPORT_NAME, IMPACT_VECTORS_DIR
from ..settings import DEFAULT_QUANTIZATION
from .base import VectorWriter, WriterError, read_id_lines
from .manifest import build_manifest, read_manifest

logger = logging.getLogger(__name__)

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
        raise WriterError(
            f"impact vector of document {docid!r} must be a dict of token -> int, got {type(vector).__name__}"
        )
    cleaned: dict[str, int] = {}
    for token, weight in vector.items():
        if not isinstance(token, str) or not token:
            raise WriterError(f"document {docid!r}: impact token {token!r} is not a non-empty string")
        if any(ch.isspace() for ch in token):
            raise WriterError(
                f"document {docid!r}: impact token {token!r} contains whitespace "
                "(Lucene would index it as several terms)"
            )
        if len(token) > MAX_TOKEN_CHARS:
            raise WriterError(
                f"document {docid!r}: impact token {token[:40]!r}... is longer than "
                f"{MAX_TOKEN_CHARS} characters (Lucene would split it)"
            )
        if isinstance(weight, bool) or not isinstance(weight, Real):
            raise WriterError(f"document {docid!r}: weight of token {token!r} is {weight!r}, not an integer")
        if not isinstance(weight, Integral) and not float(weight).is_integer():
            raise WriterError(
                f"document {docid!r}: weight {weight!r} of token {token!r} is not an integer; "
                "quantise impacts before writing (Anserini would truncate it)"
            )
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
    EMPTY_PROBLEM = "no documents with a non-empty impact vector were written"

    def __init__(
        self,
        directory: str | os.PathLike,
        encoder_settings: Mapping[str, Any] | None = None,
        quantization: float = DEFAULT_QUANTIZATION,
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

    @property
    def vectors_dir(self) -> Path:
        return self.directory / IMPACT_VECTORS_DIR

    def _part_name(self, part: int) -> str:
        return f"{IMPACT_VECTORS_DIR}/part-{part:05d}.jsonl"

    def _open(self) -> None:
        self.vectors_dir.mkdir()

    def _reopen(self) -> None:
        self.vectors_dir.mkdir(exist_ok=True)
        if self._part >= 0:
            self._reopen_file(self._part_name(self._part))
        if self.empty_docids:
            self._reopen_file(EMPTY_REPORT_NAME)

    def _state(self) -> dict[str, Any]:
        return {
            "part": self._part,
            "in_part": self._in_part,
            "num_postings": self.num_postings,
            "num_empty": len(self.empty_docids),
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self._part, self._in_part = int(state["part"]), int(state["in_part"])
        self.num_postings = int(state["num_postings"])
        self.empty_docids = read_id_lines(self.directory / EMPTY_REPORT_NAME)
        if len(self.empty_docids) != int(state["num_empty"]):
            raise WriterError(
                f"{self.directory / EMPTY_REPORT_NAME}: {len(self.empty_docids)} ids, the checkpoint "
                f"committed {state['num_empty']}"
            )

    def _committed_ids(self) -> list[str]:
        return [str(docid) for docid, _ in iter_vector_records(self.directory)] + self.empty_docids

    def _next_part(self) -> None:
        if self._part >= 0:
            self._close_file(self._part_name(self._part))
        self._part += 1
        self._in_part = 0
        self._append_file(self._part_name(self._part))

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
        self._require_open()
        cleaned = clean_impact_vector(docid, vector)
        if not cleaned:
            if self.strict:
                raise EmptyVectorError(
                    f"document {docid!r} has an empty impact vector (no positive integer weight); Lucene would "
                    "silently skip it. Use a larger k/quantisation, or strict=False (--allow-empty) to leave such "
                    "documents out with a report"
                )
            self.add_empty_docids([docid])
            logger.warning(
                "document %r has an empty impact vector; left out (%d so far)", docid, len(self.empty_docids)
            )
            return False
        if self._part < 0 or self._in_part >= self.records_per_file:
            self._next_part()
        line = json.dumps({"id": docid, "contents": "", "vector": cleaned}, ensure_ascii=False) + "\n"
        self._open_files[self._part_name(self._part)].write(line.encode("utf-8"))
        self._in_part += 1
        self.num_docs += 1
        self.num_postings += len(cleaned)
        return True

    def add_empty_docids(self, docids: Sequence[str]) -> None:
        """List documents left out for an empty vector in ``empty-vector-docids.txt`` (appended as they come)."""
        if not docids:
            return
        handle = self._open_files.get(EMPTY_REPORT_NAME) or self._append_file(EMPTY_REPORT_NAME)
        handle.write("".join(f"{docid}\n" for docid in docids).encode("utf-8"))
        self.empty_docids.extend(docids)

    def _finish(self) -> None:
        if self.empty_docids:
            logger.warning(
                "%d document(s) had empty impact vectors and were left out; see %s",
                len(self.empty_docids),
                self.directory / EMPTY_REPORT_NAME,
            )

    def _manifest(self) -> dict[str, Any]:
        extra = {
            "num_skipped_empty": len(self.empty_docids),
            "num_postings": self.num_postings,
            "num_files": self._part + 1,
            **self.manifest_extra,
        }
        return build_manifest(
            "impact-vectors",
            self.encoder_settings,
            self.num_docs,
            quantization=self.quantization,
            shard=self.shard,
            **extra,
        )


def vector_files(directory: str | os.PathLike) -> list[Path]:
    """The ``.jsonl`` parts of an impact-vectors folder, in order."""
    return sorted((Path(directory) / IMPACT_VECTORS_DIR).glob("*.jsonl"))


def iter_vector_records(directory: str | os.PathLike):
    """Yield ``(docid, vector)`` from an impact-vectors folder, naming file and line on a bad record."""
    for path in vector_files(directory):
        with open(path, "rb") as handle:
            for line_number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                    docid, vector = record["id"], record["vector"]
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
                    raise WriterError(
                        f"{path}, line {line_number}: not a JsonVectorCollection record ({error}); "
                        "the file is truncated or corrupt"
                    ) from None
                yield docid, vector


def merge_jsonl_vectors(
    inputs: Sequence[str | os.PathLike], output: str | os.PathLike, manifest_extra: Mapping[str, Any] | None = None
) -> int:
    """Concatenate impact-vectors shard folders (in order) into ``output``; return the document count.

    Records are re-validated (ids unique across shards); empty-vector reports of the shards are concatenated.
    """
    first = read_manifest(inputs[0], "impact-vectors")
    writer = JsonVectorWriter(
        output, first["encoder"], quantization=first["quantization"], manifest_extra=manifest_extra
    )
    with writer:
        for folder in inputs:
            for docid, vector in iter_vector_records(folder):
                writer.write({"id": [docid], "vector": [vector]})
            writer.add_empty_docids(read_id_lines(Path(folder) / EMPTY_REPORT_NAME))
            writer.copy_skipped_report(folder)
    return writer.num_docs

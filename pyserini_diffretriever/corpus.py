"""Streaming JSON-lines corpus reader with Pyserini's field rules and precise errors.

Why not :class:`pyserini.encode.JsonlCollectionIterator`: it loads the whole corpus into memory before the
first batch, and a malformed record surfaces as a bare ``json.JSONDecodeError`` or ``AssertionError``. This
reader keeps Pyserini's rules (so the same ``--corpus/--fields/--docid-field/--delimiter/--shard-id/--shard-num``
select the same documents in the same order) but reads one line at a time and names the file, line and
problem of every bad record instead of dropping or guessing.

Rules (as in ``JsonlCollectionIterator``)
-----------------------------------------
* ``--corpus`` is a file, or a folder whose ``*.jsonl`` / ``*.json`` files (optionally ``.gz``) are read in
  sorted name order. Every file is JSON lines (records separated by ``\\n``); blank lines are skipped and
  are not records.
* The document id comes from ``docid_field`` or else the first of ``id``, ``_id``, ``docid``.
* Fields come from same-named keys when all of them are present, otherwise from ``contents`` split on the
  delimiter (one trailing delimiter is dropped when there is exactly one too many, e.g. CACM's final ``\\n``).
  Values are stripped of surrounding whitespace.
* Sharding is contiguous: ``shard_size = N // shard_num`` and the last shard takes the remainder.

Bad records
-----------
Each of these is a *problem* (:data:`PROBLEMS` lists their codes): invalid UTF-8, invalid JSON, a line that is
not a JSON object, a missing / empty / non-scalar id, an id with whitespace or control characters (the
``docid`` file holds one id per line and TREC run files separate columns by whitespace), neither the fields nor
``contents``, a field that is not text, a wrong number of delimited fields, a record whose fields are all empty
or whitespace, text with control characters (U+0000-U+0008, U+000E-U+001B, U+007F) or lone surrogates, a
record longer than ``max_record_bytes``, and a duplicate id (within the records read). A UTF-8 byte-order mark
at the start of a file is accepted.

With ``on_error="strict"`` (default) the first problem raises :class:`CorpusError` naming file, line and
problem. With ``on_error="skip"`` the record is left out and reported as a :class:`SkippedRecord` (the
encoder lists them in ``skipped-records.jsonl`` and counts them in the manifest); a skipped record still
counts as a record for sharding, so both modes shard a corpus identically.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from .settings import check_positive_int

logger = logging.getLogger(__name__)

CORPUS_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
DEFAULT_ID_KEYS = ("id", "_id", "docid")
ON_ERROR_CHOICES = ("strict", "skip")
#: Longest accepted record (bytes of one line); passages are truncated to a few hundred tokens anyway, and a
#: larger line is almost always a broken file (a missing newline, a binary blob).
DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024

#: Problem codes of bad records (``CorpusError.kind`` / ``SkippedRecord.kind``).
PROBLEMS = {
    "invalid-utf8": "the line is not valid UTF-8",
    "invalid-json": "the line is not valid JSON",
    "not-an-object": "the JSON value is not an object",
    "missing-id": "no id key",
    "bad-id": "the id is empty, not a string/number, or has whitespace / control characters",
    "missing-field": "neither the --fields keys nor 'contents'",
    "bad-field": "a field (or 'contents') is not a string, or 'contents' splits into the wrong number of fields",
    "empty-text": "all fields are empty or whitespace",
    "control-character": "text with a control character or a lone surrogate",
    "too-long": "the line is longer than max_record_bytes",
    "duplicate-id": "the id was already used by an earlier record",
}

_BOM = b"\xef\xbb\xbf"
# C0 controls that are not whitespace, and DEL: binary garbage in text (\t \n \v \f \r \x1c-\x1f are whitespace)
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class CorpusError(ValueError):
    """A corpus record (or the corpus path) that cannot be encoded; the message names file, line and problem.

    Attributes
    ----------
    path, line, problem : str, int or None, str
        Where and what.
    kind : str or None
        The problem code (a key of :data:`PROBLEMS`), ``None`` for path-level errors.
    docid : str or None
        The record's id when it could be read.
    """

    def __init__(
        self, path: str | os.PathLike, line: int | None, problem: str, kind: str | None = None, docid: str | None = None
    ) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.kind = kind
        self.docid = docid
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class CorpusRecord:
    """One document: its id, its field values in ``fields`` order, and where it came from."""

    docid: str
    fields: dict[str, str]
    path: str
    line: int


@dataclass(frozen=True)
class SkippedRecord:
    """A bad record left out in ``on_error="skip"`` mode: where it is, its id if known, and the problem."""

    path: str
    line: int
    kind: str
    problem: str
    docid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``skipped-records.jsonl`` line of this record."""
        return {"file": self.path, "line": self.line, "id": self.docid, "kind": self.kind, "problem": self.problem}

    def error(self) -> CorpusError:
        """The error strict mode raises for this record."""
        return CorpusError(self.path, self.line, self.problem, self.kind, self.docid)


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class _Problem(Exception):
    """Internal: one bad record (becomes a CorpusError or a SkippedRecord)."""

    def __init__(self, kind: str, problem: str, docid: str | None = None) -> None:
        super().__init__(problem)
        self.kind, self.problem, self.docid = kind, problem, docid


def list_corpus_files(path: str | os.PathLike) -> list[Path]:
    """The files a corpus path stands for: the file itself, or a folder's JSON-lines files in name order.

    Raises
    ------
    CorpusError
        If the path does not exist or a folder holds no ``.jsonl``/``.json`` file.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CorpusError(path, None, "corpus path does not exist")
    files, ignored = [], []
    for child in sorted(path.iterdir()):
        if child.is_file() and child.name.endswith(CORPUS_SUFFIXES) and not child.name.startswith("."):
            files.append(child)
        elif not child.name.startswith("."):
            ignored.append(child.name)
    if ignored:
        logger.warning(
            "Corpus folder %s: ignoring %d non-JSON entries (%s)",
            path,
            len(ignored),
            ", ".join(ignored[:5]) + (" ..." if len(ignored) > 5 else ""),
        )
    if not files:
        raise CorpusError(path, None, f"folder has no corpus files ({', '.join(CORPUS_SUFFIXES)})")
    return files


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as error:
        raise CorpusError(path, None, f"cannot open corpus file ({error.strerror or error})") from None


def _raw_lines(path: Path, max_bytes: int) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield ``(line_number, bytes, size)`` for every line; ``bytes`` is ``None`` for a line over ``max_bytes``.

    An over-long line is read in bounded chunks and dropped, so a corrupt multi-gigabyte "line" never sits in
    memory. A byte-order mark at the start of the file is removed.
    """
    with _open_binary(path) as handle:
        line_number = 0
        try:
            while True:
                chunk = handle.readline(max_bytes + 1) if max_bytes else handle.readline()
                if not chunk:
                    return
                line_number += 1
                if line_number == 1 and chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
                if max_bytes and len(chunk) > max_bytes and not chunk.endswith(b"\n"):
                    size = len(chunk)
                    while not chunk.endswith(b"\n"):
                        chunk = handle.readline(1 << 20)
                        if not chunk:
                            break
                        size += len(chunk)
                    yield line_number, None, size - chunk.endswith(b"\n")  # bytes of the record, without \n
                    continue
                yield line_number, chunk, len(chunk)
        except (OSError, EOFError, gzip.BadGzipFile) as error:  # truncated or corrupt .gz, I/O error
            raise CorpusError(path, line_number + 1, f"cannot read corpus file ({error})") from None


def shard_bounds(total: int, shard_id: int, shard_num: int) -> tuple[int, int]:
    """Record range ``[start, end)`` of a contiguous shard, exactly as Pyserini's iterator computes it."""
    if shard_num < 1:
        raise ValueError(f"shard_num must be >= 1, got {shard_num}")
    if not 0 <= shard_id < shard_num:
        raise ValueError(f"shard_id must be in [0, {shard_num}), got {shard_id}")
    shard_size = total // shard_num
    start = shard_id * shard_size
    end = total if shard_id == shard_num - 1 else min(start + shard_size, total)
    return start, end


def docid_problem(docid: str) -> str | None:
    """Why ``docid`` cannot be an output id (``None`` if it can): empty, whitespace, control or surrogate."""
    if not docid.strip():
        return "empty id"
    if any(ch.isspace() for ch in docid):
        return (
            f"id {docid!r} contains whitespace (the docid file holds one id per line and TREC run files "
            "separate columns by whitespace)"
        )
    if _CONTROL.search(docid) or any(0x80 <= ord(ch) <= 0x9F for ch in docid):
        return f"id {docid!r} contains a control character"
    if _SURROGATE.search(docid):
        return f"id {docid!r} contains a lone surrogate (invalid Unicode)"
    return None


class JsonlCorpusReader:
    """Read a JSON-lines corpus one record at a time (see the module docstring for the rules).

    Parameters
    ----------
    path : str or PathLike
        A corpus file or a folder of corpus files.
    fields : sequence of str
        Field names in order, e.g. ``("text",)`` or ``("title", "text")``.
    docid_field : str, optional
        Key holding the document id; default: first of ``id``, ``_id``, ``docid``.
    delimiter : str
        Separator of the fields inside ``contents``.
    on_error : {"strict", "skip"}
        Raise :class:`CorpusError` at the first bad record, or leave bad records out and report them.
    max_record_bytes : int
        Longest accepted line in bytes (0: no limit).

    Examples
    --------
    >>> import json, tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "c.jsonl")
    >>> with open(p, "w") as f:
    ...     _ = f.write(json.dumps({"_id": "d1", "title": "Wings", "text": "Lift."}) + "\\n")
    >>> [(r.docid, r.fields) for r in JsonlCorpusReader(p, fields=("title", "text"))]
    [('d1', {'title': 'Wings', 'text': 'Lift.'})]
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fields: Sequence[str] = ("text",),
        docid_field: str | None = None,
        delimiter: str = "\n",
        on_error: str = "strict",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        if not fields:
            raise ValueError("at least one field is required")
        if len(set(fields)) != len(fields):
            raise ValueError(f"fields must be distinct, got {list(fields)}")
        if not delimiter:
            raise ValueError("delimiter must not be empty")
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        if max_record_bytes < 0:
            raise ValueError(f"max_record_bytes must be >= 0, got {max_record_bytes}")
        self.path = Path(path)
        self.fields = tuple(fields)
        self.docid_field = docid_field
        self.delimiter = delimiter
        self.on_error = on_error
        self.max_record_bytes = max_record_bytes
        self.files = list_corpus_files(self.path)
        self.skipped: list[SkippedRecord] = []
        self._count: int | None = None

    def count(self) -> int:
        """Number of records (non-blank lines) in the corpus; read once without parsing JSON."""
        if self._count is None:
            total = 0
            for file in self.files:
                total += sum(1 for _, raw, _ in _raw_lines(file, self.max_record_bytes) if raw is None or raw.strip())
            self._count = total
        return self._count

    def __iter__(self) -> Iterator[CorpusRecord]:
        return self.iter_records()

    def iter_entries(
        self, start: int = 0, end: int | None = None, digest: _Digest | None = None
    ) -> Iterator[CorpusRecord | SkippedRecord]:
        """Yield one entry per record ``start <= i < end``: the record, or a :class:`SkippedRecord` if it is bad.

        Never raises for a bad record (whatever ``on_error``); lines before ``start`` are skipped unparsed.
        Duplicate ids are detected among the records of this call (the later occurrence is the bad one).
        ``digest`` (e.g. ``hashlib.sha256()``) is updated with the raw bytes of every record yielded, so a
        resumed run can check that the part of the corpus it already encoded did not change.
        """
        seen: dict[str, tuple[int, int]] = {}
        index = -1
        for file_number, file in enumerate(self.files):
            for line_number, raw, size in _raw_lines(file, self.max_record_bytes):
                if raw is not None and not raw.strip():
                    continue
                index += 1
                if index < start:
                    continue
                if end is not None and index >= end:
                    return
                if digest is not None:
                    digest.update(raw if raw is not None else f"\0too-long:{size}\n".encode())
                try:
                    if raw is None:
                        raise _Problem(
                            "too-long",
                            f"record is {size} bytes, longer than the limit of "
                            f"{self.max_record_bytes} (--max-record-bytes)",
                        )
                    record = self._parse(raw, file, line_number)
                    first = seen.get(record.docid)
                    if first is not None:
                        raise _Problem(
                            "duplicate-id",
                            f"duplicate id {record.docid!r} (first seen at {self.files[first[0]]}, line {first[1]})",
                            record.docid,
                        )
                except _Problem as problem:
                    yield SkippedRecord(str(file), line_number, problem.kind, problem.problem, problem.docid)
                    continue
                seen[record.docid] = (file_number, line_number)
                yield record

    def iter_records(
        self, start: int = 0, end: int | None = None, on_skip: Callable[[SkippedRecord], None] | None = None
    ) -> Iterator[CorpusRecord]:
        """Yield the valid records ``start <= i < end`` (record indices over the whole corpus).

        Strict mode raises :class:`CorpusError` at the first bad record; skip mode passes each bad record to
        ``on_skip`` (default: append it to :attr:`skipped`) and logs a warning.
        """
        for entry in self.iter_entries(start, end):
            if isinstance(entry, CorpusRecord):
                yield entry
                continue
            if self.on_error == "strict":
                raise entry.error()
            logger.warning("skipping %s, line %d: %s", entry.path, entry.line, entry.problem)
            (on_skip or self.skipped.append)(entry)

    def iter_batches(
        self, batch_size: int, shard_id: int = 0, shard_num: int = 1, progress: bool = True
    ) -> Iterator[dict[str, list[str]]]:
        """Yield Pyserini-style ``batch_info`` dicts (``{"id": [...], <field>: [...]}``) for one shard."""
        check_positive_int("batch_size", batch_size)
        start, end = shard_bounds(self.count(), shard_id, shard_num)
        from tqdm import tqdm

        bar = tqdm(total=end - start, unit="doc", desc=f"encode shard {shard_id}/{shard_num}", disable=not progress)
        batch: dict[str, list[str]] = self._empty_batch()
        try:
            for record in self.iter_records(start, end):
                batch["id"].append(record.docid)
                for name in self.fields:
                    batch[name].append(record.fields[name])
                if len(batch["id"]) == batch_size:
                    yield batch
                    bar.update(len(batch["id"]))
                    batch = self._empty_batch()
            if batch["id"]:
                yield batch
                bar.update(len(batch["id"]))
        finally:
            bar.close()

    def _empty_batch(self) -> dict[str, list[str]]:
        return {"id": [], **{name: [] for name in self.fields}}

    # -- one record -------------------------------------------------------------------------------------------
    def _parse(self, raw: bytes, file: Path, line_number: int) -> CorpusRecord:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _Problem(
                "invalid-utf8",
                f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1} "
                "of the line); re-encode the file as UTF-8",
            ) from None
        try:
            info = json.loads(line)
        except json.JSONDecodeError as error:
            raise _Problem("invalid-json", f"invalid JSON ({error.msg} at column {error.colno})") from None
        except RecursionError:
            raise _Problem("invalid-json", "invalid JSON (nested too deeply)") from None
        if not isinstance(info, dict):
            raise _Problem("not-an-object", f"expected a JSON object, got {type(info).__name__}")
        docid = self._docid(info)
        values = self._field_values(info, docid)
        if not any(values.values()):
            raise _Problem("empty-text", f"empty text in document {docid!r} (fields {list(self.fields)})", docid)
        for name, value in values.items():
            bad = _CONTROL.search(value)
            if bad:
                raise _Problem(
                    "control-character",
                    f"field {name!r} of document {docid!r} contains control "
                    f"character U+{ord(bad.group()):04X} at offset {bad.start()}",
                    docid,
                )
            bad = _SURROGATE.search(value)
            if bad:
                raise _Problem(
                    "control-character",
                    f"field {name!r} of document {docid!r} contains a lone "
                    f"surrogate U+{ord(bad.group()):04X} (invalid Unicode) at "
                    f"offset {bad.start()}",
                    docid,
                )
        return CorpusRecord(docid=docid, fields=values, path=str(file), line=line_number)

    def _docid(self, info: dict[str, Any]) -> str:
        keys = (self.docid_field,) if self.docid_field else DEFAULT_ID_KEYS
        raw = next((info[key] for key in keys if key in info and info[key] is not None), None)
        if raw is None:
            raise _Problem("missing-id", f"missing id (looked for key {' / '.join(map(repr, keys))})")
        if isinstance(raw, (dict, list, bool)):
            raise _Problem("bad-id", f"id must be a string or number, got {type(raw).__name__}")
        docid = str(raw)
        problem = docid_problem(docid)
        if problem:
            raise _Problem("bad-id", problem)
        return docid

    def _field_values(self, info: dict[str, Any], docid: str) -> dict[str, str]:
        if all(name in info for name in self.fields):
            values = {}
            for name in self.fields:
                value = info[name]
                if value is None:
                    value = ""
                if not isinstance(value, str):
                    raise _Problem(
                        "bad-field", f"field {name!r} of document {docid!r} is {type(value).__name__}, not text", docid
                    )
                values[name] = value.strip()
            return values
        if "contents" not in info:
            missing = [name for name in self.fields if name not in info]
            raise _Problem(
                "missing-field", f"missing text field(s) {missing} and no 'contents' in document {docid!r}", docid
            )
        contents = info["contents"]
        if not isinstance(contents, str):
            raise _Problem("bad-field", f"'contents' of document {docid!r} is not text", docid)
        n_fields = len(self.fields)
        if contents.count(self.delimiter) == n_fields and contents.endswith(self.delimiter):
            contents = contents[: -len(self.delimiter)]
        parts = contents.split(self.delimiter)
        if len(parts) != n_fields:
            raise _Problem(
                "bad-field",
                f"'contents' of document {docid!r} splits into {len(parts)} parts on delimiter {self.delimiter!r}, "
                f"expected {n_fields} for fields {list(self.fields)} (use --fields/--delimiter to match the corpus)",
                docid,
            )
        return {name: part.strip() for name, part in zip(self.fields, parts)}

"""Read local topic files (TSV, JSON, JSONL) into ``{qid: query text}`` without the JVM or the network.

Why not Pyserini's readers: ``get_topics`` resolves names over the network and reading a file goes through
Anserini's Java ``TopicReader`` (spec pyserini.md §7), which needs the JVM and, on a malformed line, returns
null so that Pyserini raises a bare ``ValueError``. Here every problem names the file and the line.

Accepted layouts (``.gz`` allowed on each; UTF-8, an initial byte-order mark is dropped):

``.tsv`` / ``.txt``
    ``qid<TAB>query`` per line (Pyserini's TSV topics, BEIR's ``topics.*.tsv``); blank lines are skipped.
    Like Anserini's ``TsvIntTopicReader`` / ``TsvStringTopicReader`` (which Pyserini uses for these files:
    ``line.trim().split("\\t")``, id ``arr[0]``, text ``arr[1].trim()``), further tab-separated columns are
    ignored; a warning says how many lines had them.
``.json``
    ``{"qid": "query"}`` or ``{"qid": {"title": "query", ...}}`` (Pyserini's JSON topics), or a list of records.
``.jsonl``
    One record per line with an id key (``qid``, ``_id``, ``id``, ``query_id``) and a text key (``query``,
    ``text``, ``title``, ``contents``), e.g. BEIR's ``queries.jsonl``.

Refused records (the message names file and line, or file and JSON key/index): invalid UTF-8, a missing,
empty or duplicate id, an id with whitespace or control characters (it would break TREC run files), missing or
empty text, and text with control characters (U+0000-U+001F, U+007F-U+009F; tab, and in JSON strings also
newline and carriage return, are allowed) or lone surrogates (from JSON ``\\ud800``-style escapes) -- usually
the sign of a wrongly converted file. ``on_error="skip"`` leaves such records out and reports them
(:func:`load_topics`); problems with the whole file (missing, unknown type, unparsable JSON document, truncated
gzip, no topics) are always errors.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

__all__ = ["ON_ERROR_CHOICES", "SkippedTopic", "TopicsFile", "TopicsFormatError", "load_topics", "read_topics"]

ID_KEYS = ("qid", "_id", "id", "query_id")
TEXT_KEYS = ("query", "text", "title", "contents")
ON_ERROR_CHOICES = ("strict", "skip")
MAX_SKIP_WARNINGS = 20

_CONTROL = "\x00-\x1f\x7f-\x9f"
_SURROGATES = "\ud800-\udfff"
_BAD_IN_ID = re.compile(f"[{_CONTROL}{_SURROGATES}]")
_BAD_IN_TSV_TEXT = re.compile(f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_SURROGATES}]")  # tab allowed
_BAD_IN_JSON_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_SURROGATES}]")  # tab, \n, \r allowed


class TopicsFormatError(ValueError):
    """A topics file is missing, of an unknown type, or has a malformed record (the message names the line)."""


class _RecordError(Exception):
    """One record's problem (skippable); ``str()`` is the problem without the location."""


@dataclass(frozen=True)
class SkippedTopic:
    """A record left out by ``on_error="skip"``.

    Attributes
    ----------
    where : str
        ``FILE:LINE`` (TSV, JSONL) or ``FILE[key]`` / ``FILE[index]`` (JSON).
    problem : str
        What is wrong with it.
    """

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class TopicsFile:
    """The result of :func:`load_topics`: the topics in file order and the records that were left out."""

    path: Path
    topics: dict[str, str] = field(default_factory=dict)
    skipped: list[SkippedTopic] = field(default_factory=list)
    extra_columns: int = 0  # TSV lines whose columns after the second were ignored
    first_extra_column_line: int | None = None


def _kind(path: Path) -> str:
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    name = suffixes[0].lower() if suffixes else ""
    if name in (".tsv", ".txt"):
        return "tsv"
    if name in (".json", ".jsonl"):
        return name[1:]
    raise TopicsFormatError(
        f"{path}: unknown topics type {''.join(suffixes) or '(none)'}; "
        "expected .tsv/.txt (qid<TAB>text), .json or .jsonl (optionally .gz)"
    )


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # type: ignore[return-value]


def _character(match: re.Match[str]) -> str:
    char = match.group()
    kind = "lone surrogate" if "\ud800" <= char <= "\udfff" else "control character"
    return f"{kind} U+{ord(char):04X} at character {match.start() + 1}"


def _check(qid: Any, text: Any, bad_in_text: re.Pattern[str]) -> tuple[str, str]:
    """The cleaned ``(qid, text)`` of one record, or :class:`_RecordError` saying what is wrong."""
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid).strip() == "":
        raise _RecordError(f"missing or invalid query id {qid!r}")
    qid = str(qid).strip()
    bad = _BAD_IN_ID.search(qid)
    if bad:
        raise _RecordError(f"query id {qid!r} contains a {_character(bad)} (it would break TREC run files)")
    if any(c.isspace() for c in qid):
        raise _RecordError(f"query id {qid!r} contains whitespace (it would break TREC run files)")
    if not isinstance(text, str):
        raise _RecordError(f"query {qid!r} has no text (got {type(text).__name__})")
    if not text.strip():
        raise _RecordError(f"query {qid!r} has empty text")
    bad = bad_in_text.search(text)
    if bad:
        raise _RecordError(f"query {qid!r} text contains a {_character(bad)} (a wrongly converted file?)")
    return qid, text.strip()


class _Collector:
    """Adds records to a :class:`TopicsFile`, raising (strict) or recording (skip) each record's problem."""

    def __init__(self, result: TopicsFile, on_error: str) -> None:
        self.result = result
        self.strict = on_error == "strict"

    def problem(self, where: str, message: str) -> None:
        if self.strict:
            raise TopicsFormatError(f"{where}: {message}")
        self.result.skipped.append(SkippedTopic(where, message))

    def add(self, where: str, qid: Any, text: Any, bad_in_text: re.Pattern[str]) -> None:
        try:
            qid, text = _check(qid, text, bad_in_text)
            if qid in self.result.topics:
                raise _RecordError(f"duplicate query id {qid!r}")
        except _RecordError as error:
            self.problem(where, str(error))
            return
        self.result.topics[qid] = text

    def record(self, where: str, record: Any) -> None:
        """A JSON object with an id key and a text key (JSONL lines, JSON lists)."""
        if not isinstance(record, dict):
            self.problem(where, f"expected a JSON object, got {type(record).__name__}")
            return
        id_key = next((key for key in ID_KEYS if key in record), None)
        text_key = next((key for key in TEXT_KEYS if key in record), None)
        if id_key is None or text_key is None:
            self.problem(
                where,
                f"a query record needs an id key ({', '.join(ID_KEYS)}) and a text key "
                f"({', '.join(TEXT_KEYS)}); found {', '.join(sorted(record)) or 'no keys'}",
            )
            return
        self.add(where, record[id_key], record[text_key], _BAD_IN_JSON_TEXT)


def _decode_error(error: UnicodeDecodeError, data: bytes, offset: int = 0) -> str:
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    return (
        f"invalid UTF-8 (byte 0x{data[error.start]:02x} at byte {column + offset} of the line); save the file as UTF-8"
    )


def _lines(path: Path, handle: IO[bytes], collector: _Collector) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every decodable line; undecodable lines are reported with their number."""
    number = 0
    try:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw, offset = raw[3:], 3
            else:
                offset = 0
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                collector.problem(f"{path}:{number}", _decode_error(error, raw, offset))
                continue
            yield number, line.rstrip("\r\n")
    except (OSError, EOFError) as error:  # a truncated or corrupt gzip stream
        raise TopicsFormatError(f"{path}: cannot read after line {number} ({error})") from error


def _read_tsv(path: Path, handle: IO[bytes], collector: _Collector) -> None:
    result = collector.result
    for number, line in _lines(path, handle, collector):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            collector.problem(f"{path}:{number}", f"expected 'qid<TAB>query text', found no tab in {line[:80]!r}")
            continue
        if any(column.strip() for column in columns[2:]):
            result.extra_columns += 1
            result.first_extra_column_line = result.first_extra_column_line or number
        collector.add(f"{path}:{number}", columns[0], columns[1], _BAD_IN_TSV_TEXT)


def _read_json(path: Path, handle: IO[bytes], collector: _Collector) -> None:
    try:
        data = handle.read()
    except (OSError, EOFError) as error:
        raise TopicsFormatError(f"{path}: cannot read ({error})") from error
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, bom + error.start) + 1
        raise TopicsFormatError(
            f"{path}:{line}: {_decode_error(error, data[bom:], bom if line == 1 else 0)}"
        ) from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TopicsFormatError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from error
    if isinstance(document, list):
        for number, record in enumerate(document):
            collector.record(f"{path}[{number}]", record)
    elif isinstance(document, dict):
        for qid, value in document.items():
            if isinstance(value, dict):
                text_key = next((key for key in TEXT_KEYS if key in value), None)
                value = value.get(text_key) if text_key else None
            collector.add(f"{path}[{qid!r}]", qid, value, _BAD_IN_JSON_TEXT)
    else:
        raise TopicsFormatError(f"{path}: expected a JSON object {{qid: query}} or a list of query records")


def _read_jsonl(path: Path, handle: IO[bytes], collector: _Collector) -> None:
    for number, line in _lines(path, handle, collector):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            collector.problem(f"{path}:{number}", f"invalid JSON ({error.msg})")
            continue
        collector.record(f"{path}:{number}", record)


def load_topics(path: str | Path, on_error: str = "strict") -> TopicsFile:
    """Read a local topics file and report what was left out.

    Parameters
    ----------
    path : str or Path
        A ``.tsv``/``.txt``, ``.json`` or ``.jsonl`` file, optionally gzipped (module docstring).
    on_error : {"strict", "skip"}
        ``strict``: the first bad record raises; ``skip``: bad records are left out and listed in
        :attr:`TopicsFile.skipped` (a duplicate id keeps its first record).

    Returns
    -------
    TopicsFile
        ``topics`` (``{qid: query text}`` in file order, string qids as in TREC runs) and ``skipped``.

    Raises
    ------
    TopicsFormatError
        Missing file, unknown type, an unreadable file or JSON document, a bad record (strict), or no topics.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error={on_error!r}: expected one of {ON_ERROR_CHOICES}")
    path = Path(path)
    if not path.is_file():
        raise TopicsFormatError(
            f"{path}: topics file not found (named Pyserini topics are not resolved: give a local file)"
        )
    kind = _kind(path)
    result = TopicsFile(path)
    collector = _Collector(result, on_error)
    try:
        with _open_binary(path) as handle:
            {"tsv": _read_tsv, "json": _read_json, "jsonl": _read_jsonl}[kind](path, handle, collector)
    except OSError as error:
        raise TopicsFormatError(f"{path}: cannot read ({error})") from error
    if result.extra_columns:
        logger.warning(
            "%s: %d lines have more than two tab-separated columns (first: line %d); only the first two "
            "(qid, query) are used, as Pyserini's TSV topic readers do",
            path,
            result.extra_columns,
            result.first_extra_column_line,
        )
    if not result.topics:
        skipped = f" ({len(result.skipped)} bad records skipped, first: {result.skipped[0]})" if result.skipped else ""
        raise TopicsFormatError(f"{path}: no topics found{skipped}")
    return result


def read_topics(path: str | Path, on_error: str = "strict") -> dict[str, str]:
    """Read a local topics file.

    Parameters
    ----------
    path : str or Path
        A ``.tsv``/``.txt``, ``.json`` or ``.jsonl`` file, optionally gzipped (module docstring).
    on_error : {"strict", "skip"}
        ``skip`` leaves bad records out with a logged warning each (use :func:`load_topics` to get the list).

    Returns
    -------
    dict
        ``{qid: query text}`` in file order; qids are strings (as in TREC runs).

    Raises
    ------
    TopicsFormatError
        Missing file, unknown type, malformed or duplicate record (strict), or no topics at all.
    """
    result = load_topics(path, on_error)
    for skipped in result.skipped[:MAX_SKIP_WARNINGS]:
        logger.warning("skipping query: %s", skipped)
    if len(result.skipped) > MAX_SKIP_WARNINGS:
        logger.warning("skipped %d bad query records in %s in all", len(result.skipped), result.path)
    return result.topics

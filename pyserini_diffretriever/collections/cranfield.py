"""The Cranfield test collection (1400 abstracts, 225 queries, graded judgements) in Pyserini formats.

Why: it is the one real IR collection with human judgements available offline, small enough for CPU runs.
This module turns the SMART-format raw files into what Pyserini tools read, and loads the result.

Raw formats (``cran.all.1400``, ``cran.qry``, ``cranqrel``)
    Documents are records opened by ``.I <id>`` with fields ``.T`` title, ``.A`` author, ``.B`` bibliography
    and ``.W`` text, each marker alone on its line. Queries are ``.I <id>`` + ``.W``. ``cranqrel`` lines are
    ``<query> <doc> <code>``.

Decisions (all documented in ``examples/cranfield/README.md``)
    * Query ids: ``cran.qry`` numbers its 225 queries 001, 002, 004, 008, ... 365 while ``cranqrel`` uses
      1..225 in file order, so queries are renumbered 1..225 by their position in ``cran.qry``; the original
      number is kept in :attr:`CranfieldQuery.original_id`.
    * Grades: Cleverdon's codes 1 (complete answer) .. 4 (minimum interest) become TREC gains
      ``5 - code`` (1->4, 2->3, 3->2, 4->1), so that higher means more relevant. Any other code (the file
      has ``-1``, "no interest", once per query; code 5 never occurs) is written as 0: judged, not relevant.
      Every judged pair is kept.
    * Repeated markers: in three records (240, 576, 578) a field marker reappears inside the text
      (``.A``/``.B`` in 240, a second ``.W`` in 576 and 578). A marker for a field the record already had
      is treated as a stray line: it is dropped and the following lines stay in the current field.
    * Empty records: documents 471 and 995 have no title, author, bibliography or text. They are kept (with
      empty strings), never dropped, and counted in :class:`CranfieldStats`.
    * Whitespace: every field is whitespace-normalised (runs of spaces/newlines -> one space), so each corpus
      line holds one document and topics/qrels lines hold no tabs or newlines inside fields.

Outputs (``convert_cranfield``)
    ``corpus.jsonl`` (``{"id", "title", "text"}`` per line, ids ``"1"``..``"1400"``), ``topics.tsv``
    (``qid<TAB>text``, qids 1..225) and ``qrels.txt`` (TREC ``qid 0 docid gain``, sorted by qid, docid).

``export_beir`` writes the collection (or a part: some queries, some documents) as a BEIR dataset folder
(``corpus.jsonl`` with ``_id``/``title``/``text``, ``queries.jsonl``, ``qrels/test.tsv``), the format
``python -m pyserini_diffretriever.reproduce`` reads.

Command line::

    python -m pyserini_diffretriever.collections.cranfield examples/cranfield/raw examples/cranfield
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

DOCUMENTS_FILE = "cran.all.1400"
QUERIES_FILE = "cran.qry"
QRELS_FILE = "cranqrel"
CORPUS_OUT = "corpus.jsonl"
TOPICS_OUT = "topics.tsv"
QRELS_OUT = "qrels.txt"

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "examples" / "cranfield"
"""Where a source checkout keeps the converted files (and ``raw/``)."""

_DOCUMENT_FIELDS = {".T": "title", ".A": "author", ".B": "bibliography", ".W": "text"}
_QUERY_FIELDS = {".W": "text"}


class CranfieldFormatError(ValueError):
    """A raw or converted Cranfield file does not have the expected structure (message names file:line)."""


@dataclass(frozen=True)
class CranfieldDocument:
    """One abstract; every field is whitespace-normalised and may be empty."""

    id: str
    title: str
    author: str
    bibliography: str
    text: str


@dataclass(frozen=True)
class CranfieldQuery:
    """One query: ``id`` is its 1-based position in ``cran.qry`` (the id ``cranqrel`` uses)."""

    id: str
    original_id: str
    text: str


@dataclass(frozen=True)
class CranfieldJudgement:
    """One ``cranqrel`` line: Cleverdon ``code`` and the TREC ``gain`` written to ``qrels.txt``."""

    query_id: str
    doc_id: str
    code: int
    gain: int


@dataclass
class CranfieldStats:
    """Counts reported by a conversion (the README quotes them)."""

    documents: int
    queries: int
    judgements: int
    relevant_judgements: int
    codes: dict[int, int]
    empty_text_documents: list[str]
    empty_title_documents: list[str]
    repeated_marker_documents: list[str]
    queries_without_relevant: list[str] = field(default_factory=list)


@dataclass
class CranfieldCollection:
    """The converted collection in memory: ``qrels`` is ``{qid: {docid: gain}}`` (pytrec_eval's layout)."""

    corpus: dict[str, dict[str, str]]
    topics: dict[str, str]
    qrels: dict[str, dict[str, int]]


def gain_for_code(code: int) -> int:
    """TREC gain of a Cleverdon relevance code: ``5 - code`` for 1..4, otherwise 0 (judged non-relevant)."""
    return 5 - code if 1 <= code <= 4 else 0


def _normalise(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"Cranfield file {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise CranfieldFormatError(f"{path}: not UTF-8/ASCII text ({error})") from None


def _records(path: Path, fields: dict[str, str]) -> Iterator[tuple[str, dict[str, str], bool]]:
    """Yield ``(id, {field: text}, had_repeated_marker)`` for each ``.I`` record of a SMART-format file."""
    record_id: str | None = None
    values: dict[str, list[str]] = {}
    current: str | None = None
    repeated = False
    for number, raw in enumerate(_read_lines(path), start=1):
        line = raw.rstrip()
        if line.startswith(".I ") or line == ".I":
            if record_id is not None:
                yield (
                    record_id,
                    {name: _normalise(values.get(name, [])) for name in fields.values()},
                    repeated,
                )
            record_id = line[2:].strip()
            if not record_id:
                raise CranfieldFormatError(f"{path}:{number}: '.I' without an id")
            values, current, repeated = {}, None, False
        elif line in fields:
            if record_id is None:
                raise CranfieldFormatError(f"{path}:{number}: field marker {line!r} before the first '.I'")
            name = fields[line]
            if name in values:  # stray marker inside a field: keep filling the current field
                repeated = True
                logger.debug("%s:%d: repeated marker %s in record %s kept as text", path, number, line, record_id)
                continue
            values[name] = []
            current = name
        else:
            if record_id is None:
                if line.strip():
                    raise CranfieldFormatError(f"{path}:{number}: text before the first '.I' record")
                continue
            if current is None:
                if line.strip():
                    raise CranfieldFormatError(f"{path}:{number}: text outside a field in record {record_id}")
                continue
            values[current].append(line)
    if record_id is not None:
        yield record_id, {name: _normalise(values.get(name, [])) for name in fields.values()}, repeated


def parse_documents(path: str | Path) -> tuple[list[CranfieldDocument], list[str]]:
    """Parse ``cran.all.1400``.

    Returns
    -------
    tuple[list[CranfieldDocument], list[str]]
        The documents in file order, and the ids of records that contained a repeated field marker.

    Raises
    ------
    CranfieldFormatError
        On text outside a record or field, or a duplicate document id.
    """
    path = Path(path)
    documents: list[CranfieldDocument] = []
    repeated: list[str] = []
    for record_id, values, had_repeat in _records(path, _DOCUMENT_FIELDS):
        documents.append(CranfieldDocument(id=record_id, **values))
        if had_repeat:
            repeated.append(record_id)
    duplicates = [doc_id for doc_id, count in Counter(d.id for d in documents).items() if count > 1]
    if duplicates:
        raise CranfieldFormatError(f"{path}: duplicate document ids {duplicates[:5]}")
    return documents, repeated


def parse_queries(path: str | Path) -> list[CranfieldQuery]:
    """Parse ``cran.qry`` and number the queries 1..N in file order (the ids ``cranqrel`` uses)."""
    path = Path(path)
    queries = []
    for position, (record_id, values, had_repeat) in enumerate(_records(path, _QUERY_FIELDS), start=1):
        if had_repeat:
            raise CranfieldFormatError(f"{path}: query {record_id} has two '.W' fields")
        queries.append(CranfieldQuery(id=str(position), original_id=record_id, text=values["text"]))
    return queries


def parse_qrels(path: str | Path) -> list[CranfieldJudgement]:
    """Parse ``cranqrel`` (``query doc code`` per line; blank lines are skipped).

    Raises
    ------
    CranfieldFormatError
        On a line that is not three integers, or a (query, document) pair judged twice.
    """
    path = Path(path)
    judgements: list[CranfieldJudgement] = []
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not all(part.lstrip("-").isdigit() for part in parts):
            raise CranfieldFormatError(f"{path}:{number}: expected 'query doc code' integers, got {line!r}")
        query, doc, code = (int(part) for part in parts)
        pair = (str(query), str(doc))
        if pair in seen:
            raise CranfieldFormatError(f"{path}:{number}: query {query} / document {doc} is judged twice")
        seen.add(pair)
        judgements.append(CranfieldJudgement(pair[0], pair[1], code, gain_for_code(code)))
    return judgements


def _check_references(
    judgements: Sequence[CranfieldJudgement],
    documents: Sequence[CranfieldDocument],
    queries: Sequence[CranfieldQuery],
) -> None:
    doc_ids = {d.id for d in documents}
    query_ids = {q.id for q in queries}
    for judgement in judgements:
        if judgement.query_id not in query_ids:
            raise CranfieldFormatError(
                f"{QRELS_FILE}: query {judgement.query_id} is not one of the {len(queries)} queries"
            )
        if judgement.doc_id not in doc_ids:
            raise CranfieldFormatError(f"{QRELS_FILE}: document {judgement.doc_id} is not in {DOCUMENTS_FILE}")


def _sort_key(judgement: CranfieldJudgement) -> tuple[int, int]:
    return int(judgement.query_id), int(judgement.doc_id)


def convert_cranfield(raw_dir: str | Path, out_dir: str | Path) -> CranfieldStats:
    """Convert the raw files of ``raw_dir`` into corpus.jsonl, topics.tsv and qrels.txt in ``out_dir``.

    The output is deterministic (documents in file order, topics by qid, qrels by qid then docid), so a
    fresh conversion can be compared byte-for-byte with committed files.

    Returns
    -------
    CranfieldStats
        Counts of documents, queries, judgements by code, and the ids of empty or repaired records.
    """
    raw = Path(raw_dir)
    out = Path(out_dir)
    documents, repeated = parse_documents(raw / DOCUMENTS_FILE)
    queries = parse_queries(raw / QUERIES_FILE)
    judgements = parse_qrels(raw / QRELS_FILE)
    _check_references(judgements, documents, queries)

    out.mkdir(parents=True, exist_ok=True)
    with (out / CORPUS_OUT).open("w", encoding="utf-8", newline="\n") as handle:
        for doc in documents:
            handle.write(json.dumps({"id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False) + "\n")
    with (out / TOPICS_OUT).open("w", encoding="utf-8", newline="\n") as handle:
        for query in queries:
            handle.write(f"{query.id}\t{query.text}\n")
    with (out / QRELS_OUT).open("w", encoding="utf-8", newline="\n") as handle:
        for judgement in sorted(judgements, key=_sort_key):
            handle.write(f"{judgement.query_id} 0 {judgement.doc_id} {judgement.gain}\n")

    relevant_queries = {j.query_id for j in judgements if j.gain > 0}
    stats = CranfieldStats(
        documents=len(documents),
        queries=len(queries),
        judgements=len(judgements),
        relevant_judgements=sum(j.gain > 0 for j in judgements),
        codes=dict(sorted(Counter(j.code for j in judgements).items())),
        empty_text_documents=[d.id for d in documents if not d.text],
        empty_title_documents=[d.id for d in documents if not d.title],
        repeated_marker_documents=repeated,
        queries_without_relevant=[q.id for q in queries if q.id not in relevant_queries],
    )
    if stats.empty_text_documents:
        logger.warning("Cranfield documents with empty text (kept): %s", ", ".join(stats.empty_text_documents))
    if repeated:
        logger.warning("Cranfield records with repeated field markers (kept as text): %s", ", ".join(repeated))
    logger.info(
        "Cranfield: %d documents, %d queries, %d judgements (%d relevant) written to %s",
        stats.documents,
        stats.queries,
        stats.judgements,
        stats.relevant_judgements,
        out,
    )
    return stats


def load_cranfield(directory: str | Path | None = None) -> CranfieldCollection:
    """Load converted Cranfield files (default: ``examples/cranfield`` of a source checkout).

    Raises
    ------
    FileNotFoundError
        If a converted file is missing (run the converter first).
    CranfieldFormatError
        If a line of ``topics.tsv``/``qrels.txt``/``corpus.jsonl`` is malformed.
    """
    folder = Path(directory) if directory is not None else DEFAULT_DIR
    for name in (CORPUS_OUT, TOPICS_OUT, QRELS_OUT):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder / name} is missing; convert first with "
                f"python -m pyserini_diffretriever.collections.cranfield RAW_DIR {folder}"
            )
    corpus: dict[str, dict[str, str]] = {}
    for number, line in enumerate(_read_lines(folder / CORPUS_OUT), start=1):
        try:
            record = json.loads(line)
            corpus[record["id"]] = {"title": record["title"], "text": record["text"]}
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise CranfieldFormatError(f"{folder / CORPUS_OUT}:{number}: bad record ({error})") from None
    topics: dict[str, str] = {}
    for number, line in enumerate(_read_lines(folder / TOPICS_OUT), start=1):
        qid, tab, text = line.partition("\t")
        if not tab:
            raise CranfieldFormatError(f"{folder / TOPICS_OUT}:{number}: expected 'qid<TAB>text'")
        topics[qid] = text
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(_read_lines(folder / QRELS_OUT), start=1):
        parts = line.split()
        if len(parts) != 4 or not parts[3].lstrip("-").isdigit():
            raise CranfieldFormatError(f"{folder / QRELS_OUT}:{number}: expected 'qid 0 docid gain'")
        qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return CranfieldCollection(corpus=corpus, topics=topics, qrels=qrels)


def export_beir(
    out_dir: str | Path,
    collection: CranfieldCollection | None = None,
    *,
    queries: Sequence[str] | None = None,
    documents: Sequence[str] | None = None,
    split: str = "test",
) -> Path:
    """Write Cranfield (or a part of it) as a BEIR dataset folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.

    Why: ``python -m pyserini_diffretriever.reproduce`` reads datasets in BEIR's format; this gives it a real,
    judged collection offline (the tests cut it into two small "datasets").

    Parameters
    ----------
    out_dir : str or Path
        Folder to create (files in it are replaced).
    collection : CranfieldCollection, optional
        Default: :func:`load_cranfield` of the shipped files.
    queries : sequence of str, optional
        Query ids to keep (default all); only their judgements are written.
    documents : sequence of str, optional
        Document ids to keep (default all); judgements of other documents are dropped with them.
    split : str
        Name of the qrels file (BEIR's ``test``).
    """
    data = collection if collection is not None else load_cranfield()
    keep_queries = list(data.topics) if queries is None else [str(q) for q in queries]
    keep_documents = list(data.corpus) if documents is None else [str(d) for d in documents]
    unknown = [q for q in keep_queries if q not in data.topics] + [d for d in keep_documents if d not in data.corpus]
    if unknown:
        raise KeyError(f"not in Cranfield: {unknown[:5]}")
    kept = set(keep_documents)
    out = Path(out_dir)
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
        for docid in keep_documents:
            doc = data.corpus[docid]
            record = {"_id": docid, "title": doc["title"], "text": doc["text"]}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8", newline="\n") as handle:
        for qid in keep_queries:
            handle.write(json.dumps({"_id": qid, "text": data.topics[qid]}, ensure_ascii=False) + "\n")
    with (out / "qrels" / f"{split}.tsv").open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid in keep_queries:
            for docid, gain in sorted(data.qrels.get(qid, {}).items(), key=lambda item: int(item[0])):
                if docid in kept:
                    handle.write(f"{qid}\t{docid}\t{gain}\n")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so the documentation's commands can be checked against it)."""
    parser = argparse.ArgumentParser(
        prog="python -m pyserini_diffretriever.collections.cranfield",
        description="Convert the raw Cranfield files into corpus.jsonl, topics.tsv and qrels.txt.",
    )
    parser.add_argument("raw_dir", help=f"folder holding {DOCUMENTS_FILE}, {QUERIES_FILE} and {QRELS_FILE}")
    parser.add_argument("out_dir", help="folder to write the converted files into")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pyserini_diffretriever.collections.cranfield RAW_DIR OUT_DIR``: convert, print counts."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        stats = convert_cranfield(args.raw_dir, args.out_dir)
    except (CranfieldFormatError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(stats.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation datasets in BEIR's own folder format, checked and turned into what the pipeline's tools read.

A dataset is a folder as BEIR's zip files unpack::

    scifact/corpus.jsonl     {"_id": ..., "title": ..., "text": ...} per line (encoded as is)
    scifact/queries.jsonl    {"_id": ..., "text": ...} per line
    scifact/qrels/test.tsv   query-id <TAB> corpus-id <TAB> score, with BEIR's header line

When ``queries.jsonl`` or the qrels file is missing and the folder's name is a BEIR dataset, Pyserini's topics and
qrels ``beir-v1.0.0-<name>-<split>`` are fetched instead (Anserini downloads them; offline this fails with the
download to make). :func:`prepare_dataset` writes, once, into the work folder:

* ``topics.tsv`` -- ``qid<TAB>text`` for the queries that have judgements (the paper's protocol: queries are
  filtered to those in the qrels), whitespace runs collapsed to one space so a query is one TSV line;
* ``qrels.txt`` -- TREC qrels (``qid 0 docid grade``), the file Pyserini's ``trec_eval`` reads;
* ``bm25-docs/docs.jsonl`` -- ``{"id", "contents": title + " " + text}``: Anserini's BEIR *flat* document.

Problems are reported with the file, the line and what is wrong; a query judged in the qrels but missing from
``queries.jsonl`` is an error, never dropped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BEIR_7",
    "DATASET_FILES",
    "Dataset",
    "DatasetError",
    "MissingDatasetError",
    "PreparedDataset",
    "beir_download_hint",
    "find_dataset",
    "parse_dataset_spec",
    "prepare_dataset",
]

BEIR_7: tuple[str, ...] = ("nq", "hotpotqa", "scifact", "fiqa", "arguana", "quora", "trec-covid")
"""The paper's BEIR-7 datasets, in the table's column order."""

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"
TOPICS_OUT = "topics.tsv"
QRELS_OUT = "qrels.txt"
BM25_DOCS_DIR = "bm25-docs"
DATASET_FILES = (TOPICS_OUT, QRELS_OUT, f"{BM25_DOCS_DIR}/docs.jsonl")
"""What :func:`prepare_dataset` writes into a dataset's ``data`` folder."""


class DatasetError(ValueError):
    """A dataset folder or file is malformed (the message names the file, line and problem)."""


class MissingDatasetError(DatasetError):
    """A dataset (or one of its files) is not there; the message says what to download."""


def beir_download_hint(name: str, parent: Path) -> str:
    """How to get BEIR dataset ``name`` into ``parent/name`` (a sentence for error messages)."""
    if name in BEIR_7 or name in ("msmarco", "fever", "climate-fever", "dbpedia-entity", "nfcorpus", "scidocs"):
        url = BEIR_URL.format(name=name)
        return f"download {url} and unzip it into {parent} (giving {parent / name}/{CORPUS_FILE})"
    return f"put a BEIR-format folder ({CORPUS_FILE}, {QUERIES_FILE}, {QRELS_DIR}/test.tsv) at {parent / name}"


@dataclass(frozen=True)
class Dataset:
    """A dataset to evaluate: its table name, its BEIR folder and the qrels split."""

    name: str
    folder: Path
    split: str = "test"

    @property
    def corpus(self) -> Path:
        return self.folder / CORPUS_FILE

    @property
    def queries(self) -> Path:
        return self.folder / QUERIES_FILE

    @property
    def qrels(self) -> Path:
        return self.folder / QRELS_DIR / f"{self.split}.tsv"

    @property
    def pyserini_name(self) -> str:
        """Pyserini's topics/qrels name for a BEIR dataset (``beir-v1.0.0-scifact-test``)."""
        return f"beir-v1.0.0-{self.name}-{self.split}"

    def fingerprint(self) -> dict[str, Any]:
        """Size and sha256 of each source file: changed content means a changed dataset; a moved folder does not."""
        files = {}
        for path in (self.corpus, self.queries, self.qrels):
            if path.is_file():
                stat = path.stat()
                name = path.name if path != self.qrels else f"{QRELS_DIR}/{path.name}"
                files[name] = {
                    "bytes": stat.st_size,
                    "sha256": _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns),
                }
        return {"name": self.name, "split": self.split, "files": files}


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in a process (~1 s per GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class PreparedDataset:
    """The files :func:`prepare_dataset` wrote, with counts."""

    dataset: Dataset
    folder: Path
    documents: int
    queries: int
    judgements: int
    topics_source: str
    qrels_source: str

    @property
    def topics(self) -> Path:
        return self.folder / TOPICS_OUT

    @property
    def qrels(self) -> Path:
        return self.folder / QRELS_OUT

    @property
    def bm25_docs(self) -> Path:
        return self.folder / BM25_DOCS_DIR

    def summary(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "queries": self.queries,
            "judgements": self.judgements,
            "topics_source": self.topics_source,
            "qrels_source": self.qrels_source,
        }


def parse_dataset_spec(spec: str, split: str = "test") -> Dataset:
    """``NAME=FOLDER`` or ``FOLDER`` (the name is the folder's base name) -> :class:`Dataset`."""
    name, sep, folder = spec.partition("=")
    if not sep:
        folder, name = spec, Path(spec.rstrip("/\\")).name
    if not name or not folder:
        raise DatasetError(f"dataset {spec!r}: expected NAME=FOLDER or FOLDER")
    if any(c.isspace() or c in "/\\" for c in name):
        raise DatasetError(f"dataset {spec!r}: the name {name!r} must not contain whitespace or slashes")
    return Dataset(name=name, folder=Path(folder).expanduser(), split=split)


def find_dataset(dataset: Dataset) -> None:
    """Check that the folder and its corpus exist; raise :class:`MissingDatasetError` naming the download."""
    hint = beir_download_hint(dataset.name, dataset.folder.parent)
    if not dataset.folder.is_dir():
        raise MissingDatasetError(f"dataset {dataset.name!r}: folder {dataset.folder} does not exist; {hint}")
    if not dataset.corpus.is_file():
        raise MissingDatasetError(f"dataset {dataset.name!r}: {dataset.corpus} is missing; {hint}")


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of a JSON-lines file; a bad line is a :class:`DatasetError`."""
    with path.open(encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DatasetError(f"{path}:{number}: invalid JSON ({error.msg})") from None
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                yield number, record
        except UnicodeDecodeError as error:
            raise DatasetError(f"{path}: not UTF-8 ({error.reason})") from None


def _identifier(record: dict[str, Any], path: Path, number: int, what: str) -> str:
    value = record.get("_id", record.get("id"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise DatasetError(
            f"{path}:{number}: {what} has no usable '_id' (got {value!r}; ids must be non-empty, no spaces)"
        )
    return value


def read_beir_queries(path: Path) -> dict[str, str]:
    """``{qid: text}`` of a BEIR ``queries.jsonl`` (``_id``, ``text``); duplicates and empty texts are errors."""
    queries: dict[str, str] = {}
    for number, record in _jsonl(path):
        qid = _identifier(record, path, number, "query")
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f"{path}:{number}: query {qid!r} has no 'text'")
        if qid in queries:
            raise DatasetError(f"{path}:{number}: query id {qid!r} appears twice")
        queries[qid] = " ".join(text.split())
    return queries


def read_beir_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{qid: {docid: grade}}`` of a BEIR qrels TSV (header line optional); malformed lines are errors."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if number == 1 and parts[0] == "query-id":
                continue
            if len(parts) == 4:  # TREC layout (qid 0 docid grade), as Pyserini's qrels files are
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
                raise DatasetError(
                    f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score' with an integer score, got {line.rstrip()!r}"
                )
            qid, docid, grade = parts[0], parts[1], int(parts[2])
            if docid in qrels.setdefault(qid, {}):
                raise DatasetError(f"{path}:{number}: query {qid!r} / document {docid!r} is judged twice")
            qrels[qid][docid] = grade
    if not qrels:
        raise DatasetError(f"{path}: no judgements")
    return qrels


def _pyserini_topics(name: str) -> dict[str, str]:  # pragma: no cover - needs the network
    from pyserini.search import get_topics

    return {str(qid): " ".join(str(topic.get("title", "")).split()) for qid, topic in get_topics(name).items()}


def _pyserini_qrels(name: str) -> dict[str, dict[str, int]]:  # pragma: no cover - needs the network
    from pyserini.search import get_qrels_file

    return read_beir_qrels(Path(get_qrels_file(name)))


FETCHERS: dict[str, Callable[[str], Any]] = {"topics": _pyserini_topics, "qrels": _pyserini_qrels}
"""How Pyserini topics / qrels are fetched by name (replaceable in tests)."""


def _fetch(kind: str, dataset: Dataset, local: Path) -> Any:
    if dataset.name not in BEIR_7 and not dataset.name.startswith("beir"):
        raise MissingDatasetError(
            f"dataset {dataset.name!r}: {local} is missing and {dataset.name!r} is not a BEIR dataset Pyserini has "
            f"{kind} for; {beir_download_hint(dataset.name, dataset.folder.parent)}"
        )
    try:
        return FETCHERS[kind](dataset.pyserini_name)
    except Exception as error:  # noqa: BLE001 - offline, unknown name: all mean "get the file yourself"
        raise MissingDatasetError(
            f"dataset {dataset.name!r}: {local} is missing and Pyserini's {kind} {dataset.pyserini_name!r} could not "
            f"be fetched ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
            f"{beir_download_hint(dataset.name, dataset.folder.parent)}"
        ) from error


def prepare_dataset(dataset: Dataset, out_dir: Path) -> PreparedDataset:
    """Check ``dataset`` and write topics, qrels and the BM25 documents into ``out_dir`` (module docstring).

    Raises
    ------
    MissingDatasetError
        The folder, its corpus, or queries/qrels (when they cannot be fetched from Pyserini) are missing.
    DatasetError
        A malformed line (named by file and line), a judged query without text, a qrels file without judgements.
    """
    find_dataset(dataset)
    if dataset.qrels.is_file():
        qrels, qrels_source = read_beir_qrels(dataset.qrels), str(dataset.qrels)
    else:
        qrels, qrels_source = _fetch("qrels", dataset, dataset.qrels), f"pyserini:{dataset.pyserini_name}"
    if dataset.queries.is_file():
        queries, topics_source = read_beir_queries(dataset.queries), str(dataset.queries)
    else:
        queries, topics_source = _fetch("topics", dataset, dataset.queries), f"pyserini:{dataset.pyserini_name}"
    unknown = [qid for qid in qrels if qid not in queries]
    if unknown:
        raise DatasetError(
            f"dataset {dataset.name!r}: {len(unknown)} judged queries are not in {topics_source} "
            f"(first: {', '.join(unknown[:5])})"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    judged = [qid for qid in queries if qid in qrels]  # queries.jsonl order
    with _atomic(out_dir / TOPICS_OUT) as handle:
        for qid in judged:
            handle.write(f"{qid}\t{queries[qid]}\n")
    with _atomic(out_dir / QRELS_OUT) as handle:
        for qid in judged:
            for docid, grade in qrels[qid].items():
                handle.write(f"{qid} 0 {docid} {grade}\n")
    documents = _write_bm25_docs(dataset.corpus, out_dir / BM25_DOCS_DIR)
    return PreparedDataset(
        dataset=dataset,
        folder=out_dir,
        documents=documents,
        queries=len(judged),
        judgements=sum(len(qrels[qid]) for qid in judged),
        topics_source=topics_source,
        qrels_source=qrels_source,
    )


def _write_bm25_docs(corpus: Path, out_dir: Path) -> int:
    """Anserini BEIR flat documents: ``contents`` = title + " " + text. Returns the number of documents."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with _atomic(out_dir / "docs.jsonl") as handle:
        for number, record in _jsonl(corpus):
            docid = _identifier(record, corpus, number, "document")
            if docid in seen:
                raise DatasetError(f"{corpus}:{number}: document id {docid!r} appears twice")
            seen.add(docid)
            title, text = record.get("title") or "", record.get("text") or ""
            if not isinstance(title, str) or not isinstance(text, str):
                raise DatasetError(f"{corpus}:{number}: 'title' and 'text' of {docid!r} must be strings")
            handle.write(json.dumps({"id": docid, "contents": f"{title} {text}".strip()}, ensure_ascii=False) + "\n")
    if not seen:
        raise DatasetError(f"{corpus}: no documents")
    return len(seen)


class _atomic:
    """Write ``path`` through ``path.tmp`` and rename when the block ends without an error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")

    def __enter__(self):
        self.handle = self.tmp.open("w", encoding="utf-8", newline="\n")
        return self.handle

    def __exit__(self, kind, value, traceback) -> None:
        self.handle.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)

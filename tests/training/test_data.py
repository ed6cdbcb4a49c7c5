"""Tevatron training data: bad records are refused with file and line; group sampling is deterministic."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.training import TevatronGroups, TrainingDataError, sample_passages

from .conftest import write_groups

GOOD = {
    "query_id": "q1",
    "query": "wing flutter",
    "positive_passages": [{"docid": "d1", "title": "Flutter", "text": "flutter of wings"}],
    "negative_passages": [{"docid": "d2", "title": "", "text": "heat transfer"}],
}


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**GOOD, "query_id": None}), "invalid 'query_id'"),
        (json.dumps({**GOOD, "query": "  "}), "has no 'query' text"),
        (json.dumps({**GOOD, "positive_passages": []}), "has no positive_passages"),
        (json.dumps({**GOOD, "positive_passages": "d1"}), "'positive_passages' must be a list"),
        (json.dumps({**GOOD, "negative_passages": [{"docid": "x", "text": ""}]}), "negative_passages[0]"),
        (
            json.dumps({**GOOD, "negative_passages": [{"docid": "x", "title": 3, "text": "t"}]}),
            "title must be a string",
        ),
        (json.dumps({**GOOD, "negative_passages": []}), "has no negative_passages"),
        (json.dumps(GOOD), "appears twice"),
    ],
)
def test_bad_records_name_the_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad_line + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError) as error:
        TevatronGroups(path, n_negatives=3)
    assert f"{path}:3:" in str(error.value) and message in str(error.value)


def test_missing_or_empty_data_is_refused(tmp_path):
    with pytest.raises(TrainingDataError, match="not found"):
        TevatronGroups(tmp_path / "absent.jsonl")
    with pytest.raises(TrainingDataError, match="no .jsonl files"):
        TevatronGroups(tmp_path)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TrainingDataError, match="no training records"):
        TevatronGroups(tmp_path / "empty.jsonl")


def test_a_folder_is_read_file_by_file_with_titles_joined_as_the_encoders_do(tmp_path):
    write_groups(tmp_path / "a.jsonl", n_queries=3)
    (tmp_path / "b.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "notes.txt").write_text("ignored")
    dataset = TevatronGroups(tmp_path, n_negatives=1, seed=0)
    assert len(dataset) == 4 and dataset.group_size == 2
    last = dataset[3]
    assert (last.query_id, last.query) == ("q1", "wing flutter")
    assert last.passages == ("Flutter. flutter of wings", "heat transfer")


def test_sampling_depends_only_on_seed_query_and_epoch():
    positives, negatives = ["p0", "p1"], [f"n{i}" for i in range(10)]
    first = sample_passages("q7", positives, negatives, 4, seed=42, epoch=0)
    assert first == sample_passages("q7", positives, negatives, 4, seed=42, epoch=0)
    assert len(first) == 5 and first[0] in positives and len(set(first[1:])) == 4
    second = sample_passages("q7", positives, negatives, 4, seed=42, epoch=1)
    assert second[0] != first[0]  # positives rotate with the epoch
    assert not set(first[1:]) & set(second[1:])  # the next window of the shuffled pool
    assert sample_passages("q7", positives, negatives, 4, seed=43, epoch=0) != first
    small = sample_passages("q7", ["p"], ["a", "b"], 5, seed=1, epoch=0)
    assert len(small) == 6 and set(small[1:]) <= {"a", "b"}  # with replacement
    assert sample_passages("q7", ["p"], [], 0, seed=1, epoch=3) == ("p",)


def test_the_dataset_follows_its_epoch(tmp_path):
    dataset = TevatronGroups(write_groups(tmp_path / "t.jsonl", n_queries=2, n_negatives=6), n_negatives=3, seed=5)
    epoch0 = dataset[0]
    dataset.set_epoch(1)
    assert dataset[0].passages[1:] != epoch0.passages[1:]
    dataset.set_epoch(0)
    assert dataset[0] == epoch0

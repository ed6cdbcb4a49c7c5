"""ResumableOutput: stable OUT.partial, flock-based lock, committed progress, settings check, finalize."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.writers import OutputExistsError, OutputLockedError, ResumableOutput, ResumeError
from pyserini_diffretriever.writers.checkpoint import PROGRESS_NAME, settings_differences

SETTINGS = {"batch_size": 4, "encoder": {"dense": {"k": 16, "prompt": "few"}}, "files": ["a", "b"]}


def test_settings_differences_are_flattened_and_listed():
    other = {"batch_size": 8, "encoder": {"dense": {"k": 16, "prompt": "one"}}, "files": ["a", "b"], "new": 1}
    assert settings_differences(SETTINGS, other) == {
        "batch_size": (4, 8),
        "encoder.dense.prompt": ("few", "one"),
        "new": (None, 1),
    }
    assert settings_differences(SETTINGS, json.loads(json.dumps(SETTINGS))) == {}
    assert settings_differences({"t": [1, 2]}, {"t": (1, 2)}) == {}  # compared as JSON


def test_fresh_run_commits_and_finalizes(tmp_path):
    out = tmp_path / "out"
    with ResumableOutput(out, SETTINGS) as run:
        assert run.partial == tmp_path / "out.partial" and run.progress is None
        lock = (tmp_path / "out.partial.lock").read_text().split()
        assert lock[0].isdigit()
        (run.partial / "data").write_text("x")
        run.commit({"records_done": 3})
        saved = json.loads((run.partial / PROGRESS_NAME).read_text())
        assert saved["state"] == {"records_done": 3} and saved["settings"] == json.loads(json.dumps(SETTINGS))
        run.finalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["data"]  # progress removed before the rename


def test_failure_before_a_commit_removes_the_partial_after_keeps_it(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), ResumableOutput(out, SETTINGS):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), ResumableOutput(out, SETTINGS) as run:
        run.commit({"records_done": 5})
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial"]
    with ResumableOutput(out, SETTINGS) as run:
        assert run.progress == {"records_done": 5}
        run.finalize()
    assert (out.is_dir(), (tmp_path / "out.partial").exists()) == (True, False)


def test_other_settings_are_refused_restart_discards(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), ResumableOutput(out, SETTINGS) as run:
        run.commit({"records_done": 1})
        raise RuntimeError
    changed = {**SETTINGS, "batch_size": 2}
    with pytest.raises(ResumeError, match=r"batch_size: 4 \(unfinished run\) vs 2 \(this run\).*--restart"):
        with ResumableOutput(out, changed):
            pass
    assert (tmp_path / "out.partial" / PROGRESS_NAME).is_file()  # refused, nothing touched
    with ResumableOutput(out, changed, restart=True) as run:
        assert run.progress is None and list(run.partial.iterdir()) == []


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    out = tmp_path / "out"
    with ResumableOutput(out, SETTINGS):
        with pytest.raises(OutputLockedError, match=r"is being written by another run \(pid/host \d+ "):
            with ResumableOutput(out, SETTINGS):
                pass
    with ResumableOutput(out, SETTINGS):  # released
        pass


def test_existing_output_and_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(OutputExistsError), ResumableOutput(out, SETTINGS):
        pass
    with ResumableOutput(out, SETTINGS, overwrite=True) as run:
        (run.partial / "new").write_text("new")
        run.finalize()
    assert [p.name for p in out.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_unreadable_progress_is_a_resume_error(tmp_path):
    (tmp_path / "out.partial").mkdir()
    (tmp_path / "out.partial" / PROGRESS_NAME).write_text("{broken")
    with pytest.raises(ResumeError, match=r"cannot read the progress of the unfinished run"):
        with ResumableOutput(tmp_path / "out", SETTINGS):
            pass
    (tmp_path / "out.partial" / PROGRESS_NAME).write_text(
        json.dumps({"format": "pyserini-diffretriever-progress", "format_version": 99, "state": {}})
    )
    with pytest.raises(ResumeError, match=r"format_version 99"), ResumableOutput(tmp_path / "out", SETTINGS):
        pass

"""Step manifests: finished steps are skipped, changed or broken ones redone, unfinished ones rerun."""

from __future__ import annotations

import json

import pytest

from pyserini_diffretriever.reproduction.steps import StepFailedError, StepLog, WorkFolderLockedError, lock_work_folder


def _writer(path, calls):
    def action():
        calls.append(path.name)
        path.write_text("x")
        return {"value": len(calls)}

    return action


def test_done_step_is_not_redone(tmp_path) -> None:
    log, calls, out = StepLog(tmp_path), [], tmp_path / "out.txt"
    first = log.run("d/c/s", {"a": 1}, [out], _writer(out, calls))
    again = StepLog(tmp_path).run("d/c/s", {"a": 1}, [out], _writer(out, calls))
    assert calls == ["out.txt"]
    assert first.status == again.status == "done" and again.result == {"value": 1}
    assert json.loads(log.path("d/c/s").read_text())["seconds"] is not None


def test_changed_key_removes_outputs_and_redoes(tmp_path, caplog) -> None:
    log, calls = StepLog(tmp_path), []
    out = tmp_path / "folder"

    def build():
        calls.append(1)
        out.mkdir()
        (out / "file").write_text(str(len(calls)))

    log.run("d/c/s", {"a": 1}, [out], build)
    (tmp_path / "folder.partial-1").mkdir()
    (tmp_path / "parent.partial").mkdir()
    record = log.run("d/c/s", {"a": 2}, [out], build, cleanup=[tmp_path / "parent"])
    assert len(calls) == 2 and record.key == {"a": 2}
    assert (out / "file").read_text() == "2" and not (tmp_path / "folder.partial-1").exists()
    assert not (tmp_path / "parent.partial").exists()
    assert "settings changed since the last run (a)" in caplog.text


def test_missing_output_or_unfinished_step_is_redone(tmp_path) -> None:
    log, calls, out = StepLog(tmp_path), [], tmp_path / "out.txt"
    log.run("s", {}, [out], _writer(out, calls))
    out.unlink()
    log.run("s", {}, [out], _writer(out, calls))
    assert len(calls) == 2

    def crash():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        log.run("t", {}, [tmp_path / "t"], crash)
    assert log.read("t").status == "started"
    assert log.finished("t", {}, [tmp_path / "t"]) is None


def test_an_action_that_writes_nothing_fails(tmp_path) -> None:
    with pytest.raises(StepFailedError, match="finished without writing"):
        StepLog(tmp_path).run("s", {}, [tmp_path / "never"], lambda: None)


def test_work_folder_lock_refuses_a_second_run_and_is_released(tmp_path) -> None:
    with lock_work_folder(tmp_path / "work"):
        with pytest.raises(WorkFolderLockedError, match=r"in use by another reproduce run \(pid/host \d+ "):
            with lock_work_folder(tmp_path / "work"):
                pass
    with lock_work_folder(tmp_path / "work"):  # released when the first run ended
        pass

"""All-or-nothing output folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyserini_diffretriever.writers.atomic import OutputExistsError, atomic_output_dir, atomic_write


def test_success_renames_partial_into_place(tmp_path):
    out = tmp_path / "sub" / "out"
    with atomic_output_dir(out) as partial:
        assert partial.parent == out.parent and partial.name.startswith("out.partial-")
        assert not out.exists()
        (partial / "file").write_text("done")
    assert (out / "file").read_text() == "done"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_error_removes_partial_and_leaves_no_output(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(out) as partial:
        (partial / "half").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite_and_survives_a_failed_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(OutputExistsError, match="--overwrite"), atomic_output_dir(out):
        pass
    with pytest.raises(RuntimeError), atomic_output_dir(out, overwrite=True) as partial:
        (partial / "new").write_text("new")
        raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["old"]
    with atomic_output_dir(out, overwrite=True) as partial:
        (partial / "new").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_stale_encode_lock_is_explained(tmp_path):
    from pyserini_diffretriever.writers.atomic import check_output_free

    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError, match=r"out already exists; choose"):
        check_output_free(tmp_path / "out")
    (tmp_path / "out.partial.lock").write_text("123 host\n")
    with pytest.raises(OutputExistsError, match=r"stopped right after finishing it: out\.partial\.lock is left over"):
        check_output_free(tmp_path / "out")


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "file.bin"
    target.write_text("old")

    def fail(path):
        with open(path, "w") as handle:
            handle.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.bin"]
    atomic_write(target, lambda path: Path(path).write_text("new"))
    assert target.read_text() == "new"

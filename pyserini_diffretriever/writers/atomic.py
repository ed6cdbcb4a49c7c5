"""All-or-nothing output folders.

Why: a run that crashes, is cancelled or is killed (even with SIGKILL) must not leave a folder that looks like
a finished index. Single files are replaced the same way by :func:`atomic_write`. Output is written into a sibling folder named ``OUT.partial-<pid>-<random>`` and renamed to
``OUT`` only after everything (manifest last) is written. A ``rename`` within one file system is atomic, so
``OUT`` either does not exist or is complete. After a SIGKILL the ``.partial-*`` folder stays behind for
inspection; it is never mistaken for output and may be deleted. This is for short jobs (merging shards,
Lucene indexing); the encoder uses the resumable variant in :mod:`.checkpoint`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Run ``write(tmp_path)`` on a temporary sibling of ``path``, make it durable, then rename it onto ``path``.

    The package's one atomic file replacement (manifests, the searchers' derived files): readers never see a
    half-written file, and a failed ``write`` leaves ``path`` as it was and no temporary file behind.
    ``write`` gets a path (not a handle) so that path-only writers such as ``faiss.write_index`` can be used.
    """
    path = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        descriptor = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutputExistsError(FileExistsError):
    """The output folder already exists and overwriting was not requested."""


def check_output_free(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail early (before hours of work) if ``path`` exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        stale = path.with_name(f"{path.name}.partial.lock")
        hint = (
            f" (the run that wrote it was stopped right after finishing it: {stale.name} is left over and may be "
            "deleted)"
            if stale.is_file() and not path.with_name(f"{path.name}.partial").exists()
            else ""
        )
        raise OutputExistsError(f"{path} already exists{hint}; choose another output or pass --overwrite")
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a folder")
    return path


@contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder; on success rename it to ``path``, on error delete it.

    Parameters
    ----------
    path : str or PathLike
        Final output folder. Its parent is created if needed.
    overwrite : bool
        Replace an existing ``path`` (only once the new output is complete).

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false (checked before and after the work).
    """
    final = check_output_free(path, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f"{final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    partial.mkdir()
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if final.exists():
        if not overwrite:
            shutil.rmtree(partial, ignore_errors=True)
            raise OutputExistsError(f"{final} appeared while this run was writing; output left unfinished")
        old = final.with_name(f"{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, final)
    logger.info("Wrote %s", final)

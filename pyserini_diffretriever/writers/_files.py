"""The one place where the writers open files for writing.

Why a function of its own: every byte this package writes into an output folder goes through
:func:`open_output`, so tests can put a simulated full disk (``OSError(ENOSPC)`` after N bytes) or a kill
point behind every write without patching built-ins.
"""

from __future__ import annotations

import os
from typing import BinaryIO


def open_output(path: str | os.PathLike, mode: str = "wb") -> BinaryIO:
    """Open ``path`` for binary writing (``"wb"``, ``"w+b"``, ``"r+b"`` or ``"ab"``)."""
    if "b" not in mode or "r" in mode and "+" not in mode:
        raise ValueError(f"open_output is for binary writing, got mode {mode!r}")
    return open(path, mode)  # noqa: SIM115 - the caller owns the handle

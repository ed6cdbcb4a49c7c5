"""Checks shared by the two read-outs (:mod:`.readout` for diffusion, :mod:`.generation` for autoregressive).

Both run a backbone and must refuse non-finite values instead of zeroing them silently (``docs/method.md`` §11),
so the error type and the checks live here, below both.
"""

from __future__ import annotations

import torch

__all__ = ["ReadoutError", "check_finite", "device_of"]


class ReadoutError(RuntimeError):
    """The backbone produced something the read-out cannot use (non-finite values, bad shapes)."""


def device_of(backbone) -> torch.device:
    """The device of a backbone's first parameter (CPU for parameterless test doubles)."""
    try:
        return next(backbone.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def check_finite(values: torch.Tensor, what: str, row_offset: int = 0) -> None:
    """Raise :class:`ReadoutError` naming the batch rows (offset by ``row_offset``) that hold NaN or inf."""
    if bool(torch.isfinite(values.sum())):  # cheap; an overflow merely falls through to the exact check
        return
    finite = torch.isfinite(values).reshape(values.shape[0], -1).all(dim=1)
    if not bool(finite.all()):
        rows = (torch.nonzero(~finite).flatten() + row_offset).tolist()
        raise ReadoutError(f"non-finite {what} in batch rows {rows[:10]}; check the backbone dtype/weights")

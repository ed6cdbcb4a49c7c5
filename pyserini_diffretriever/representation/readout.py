"""One-pass read-out of the K mask slots (docs/method.md §3): hidden states, slot logits, stop-token truncation.

``hidden = backbone.hidden_states(ids, mask)`` gives ``[B, L, H]``; only the K mask rows ``L-K-3 … L-4`` are
kept (``[B, K, H]``, fp32), and the vocabulary projection is applied to those K rows only, in row chunks of
bounded size — never to a ``[B, L, V]`` tensor (the reference materialises that; §11 item 4).

Logit alignment: by default the logits are read at the mask positions themselves (``"unshifted"``), as the
reference does for both Dream and LLaDA. ``"shifted"`` reads, for each mask position p, the logits of row
p-1 — Dream's own next-token alignment (``spec.logits_shifted``); an ablation, not the paper's numbers.

Stop-token truncation (§3.4): the decoded id of a slot is the argmax of its logits (at its commit step).
Stop ids = ``tokenizer.all_special_ids`` minus the mask id (for Dream: ``<|endoftext|>`` and
``<|beginoftext|>``, exactly the reference's set; ``<|im_end|>`` is an added token but not one of the
tokenizer's named special tokens). If the first stop id sits at slot c > 0, slots c…K-1 are zeroed (dense
and sparse); c == 0 ("model confused") keeps every slot.

Multi-step denoising (S > 1, §3.2, off by default): every step runs one forward pass over the current ids;
among the still-masked slots, the ``n_s`` with the highest confidence (negative entropy
``sum p log(p + 1e-10)``) are committed to their argmax token, and their hidden state, logits and sparse
impacts are captured from that step's pass. ``n_s`` follows the reference's timestep schedule
``t = linspace(1, 1e-3, S+1)``, ``n_s = max(1, int(n_masked * (1 - t_{s+1}/t_s)))``, all remaining at the last
step. A slot whose argmax is the mask id itself still counts as committed (the reference would leave it
masked and might re-decode it later; irrelevant for S = 1). Non-finite states or logits raise
:class:`ReadoutError` instead of being zeroed silently (``docs/method.md`` §11 item 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..settings import DEFAULT_QUANTIZATION
from .checks import ReadoutError, check_finite, device_of
from .inputs import EncodedBatch
from .sparse import ROUNDING_MODES, pad_content_ids, pool_slots, slot_impacts

LOGITS_MODES = ("unshifted", "shifted")
SCHEDULE_EPS = 1e-3
ENTROPY_EPS = 1e-10


@dataclass(frozen=True)
class ReadoutConfig:
    """How the K slots are read.

    Attributes
    ----------
    logits:
        ``"unshifted"`` (reference, default) or ``"shifted"`` (row p-1 predicts slot p; Dream only).
    denoise_steps:
        S >= 1 forward passes; 1 is the paper's setting.
    sparse_top_k:
        Entries kept per slot before pooling (reference: 128).
    quantization, rounding:
        Integer impacts ``trunc(quantization * w)`` (reference zero-shot) or ``round(...)``.
    max_logits_bytes:
        Memory cap for one chunk of ``[rows, K, V]`` fp32 slot logits; rows are processed in chunks below it.
    """

    logits: str = "unshifted"
    denoise_steps: int = 1
    sparse_top_k: int = 128
    quantization: float = DEFAULT_QUANTIZATION
    rounding: str = "truncate"
    max_logits_bytes: int = 256 * 2**20

    def __post_init__(self) -> None:
        if self.logits not in LOGITS_MODES:
            raise ValueError(f"logits={self.logits!r}: expected one of {LOGITS_MODES}")
        for name in ("denoise_steps", "sparse_top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer >= 1")
        if not self.quantization > 0:
            raise ValueError(f"quantization={self.quantization!r}: expected a positive scale")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"rounding={self.rounding!r}: expected one of {ROUNDING_MODES}")
        if self.max_logits_bytes < 1:
            raise ValueError(f"max_logits_bytes={self.max_logits_bytes!r}: expected a positive byte count")


@dataclass
class Readout:
    """What one batch yields.

    Attributes
    ----------
    dense:
        ``[B, K, H]`` fp32 slot hidden states (post-final-norm), truncated slots zeroed, not normalised.
    slot_mask:
        ``[B, K]`` bool, False for slots removed by stop-token truncation.
    decoded_ids:
        ``[B, K]`` int64 argmax token of every slot at its commit step (before truncation).
    sparse_ids, sparse_weights:
        ``[B, K, T]`` per-slot top-T content ids and int32 impacts (0 on truncated slots), or None when no
        content ids were given.
    logits:
        ``[B, K, V]`` fp32 slot logits (only with ``keep_logits=True``; for inspection and tests).
    """

    dense: torch.Tensor
    slot_mask: torch.Tensor
    decoded_ids: torch.Tensor
    sparse_ids: torch.Tensor | None = None
    sparse_weights: torch.Tensor | None = None
    logits: torch.Tensor | None = None

    def sparse(self) -> list[dict[int, int]]:
        """Max-pooled ``{token_id: impact}`` per row (empty dicts when no sparse part was computed)."""
        if self.sparse_ids is None or self.sparse_weights is None:
            return [{} for _ in range(self.dense.shape[0])]
        return pool_slots(self.sparse_ids, self.sparse_weights, self.slot_mask)


class SlotOutputs:
    """The per-slot tensors a read-out fills (shared by :func:`read_out` and the autoregressive read-out).

    ``dense`` is allocated once the hidden size is known, the sparse and logits buffers once their width is; all
    start at zero, so slots never written stay zero.
    """

    def __init__(self, rows: int, k: int, device: torch.device) -> None:
        self.rows, self.k, self.device = rows, k, device
        self.decoded = torch.zeros((rows, k), dtype=torch.long, device=device)
        self.dense: torch.Tensor | None = None
        self.sparse_ids: torch.Tensor | None = None
        self.sparse_weights: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None

    def dense_buffer(self, width: int) -> torch.Tensor:
        if self.dense is None:
            self.dense = torch.zeros((self.rows, self.k, width), dtype=torch.float32, device=self.device)
        return self.dense

    def sparse_buffers(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.sparse_ids is None or self.sparse_weights is None:
            shape = (self.rows, self.k, width)
            self.sparse_ids = torch.zeros(shape, dtype=torch.long, device=self.device)
            self.sparse_weights = torch.zeros(shape, dtype=torch.int32, device=self.device)
        return self.sparse_ids, self.sparse_weights

    def logits_buffer(self, vocab: int) -> torch.Tensor:
        if self.logits is None:
            self.logits = torch.zeros((self.rows, self.k, vocab), dtype=torch.float32, device=self.device)
        return self.logits

    def readout(self, slot_mask: torch.Tensor, mask_logits: bool = False) -> Readout:
        """Zero the truncated slots (dense, sparse, and the logits when ``mask_logits``) and package the result."""
        keep = slot_mask.unsqueeze(-1)
        sparse_weights = None if self.sparse_weights is None else self.sparse_weights * keep.to(torch.int32)
        logits = self.logits * keep if mask_logits and self.logits is not None else self.logits
        return Readout(
            dense=self.dense * keep,
            slot_mask=slot_mask,
            decoded_ids=self.decoded,
            sparse_ids=self.sparse_ids,
            sparse_weights=sparse_weights,
            logits=logits,
        )


def logits_shift(logits: str, spec: Any) -> int:
    """Rows between a mask slot and the row its logits are read at: 0 (``"unshifted"``) or 1 (``"shifted"``).

    ``"shifted"`` needs a backbone whose ``spec.logits_shifted`` says its logits are next-token aligned.
    """
    if logits not in LOGITS_MODES:
        raise ValueError(f"logits={logits!r}: expected one of {LOGITS_MODES}")
    if logits == "shifted" and not getattr(spec, "logits_shifted", False):
        raise ValueError(
            f"logits='shifted' needs a backbone with next-token-aligned logits; "
            f"{spec.model_type!r} has spec.logits_shifted=False"
        )
    return 1 if logits == "shifted" else 0


def logits_chunk_rows(max_logits_bytes: int, k: int, vocab_size: int) -> int:
    """Rows whose ``[rows, K, V]`` fp32 slot logits fit in ``max_logits_bytes`` (at least one)."""
    return max(1, max_logits_bytes // (k * int(vocab_size) * 4))


def stop_token_ids(tokenizer, mask_token_id: int | None) -> frozenset[int]:
    """The stop set of §3.4: the tokenizer's special ids except the mask id."""
    return frozenset(int(i) for i in tokenizer.all_special_ids) - {mask_token_id}


def stop_truncation(decoded_ids: torch.Tensor, stop_ids: Sequence[int] | frozenset[int]) -> torch.Tensor:
    """``[B, K]`` decoded ids -> ``[B, K]`` bool slot mask (False from the first stop slot c > 0 on)."""
    batch, k = decoded_ids.shape
    if not stop_ids:
        return torch.ones((batch, k), dtype=torch.bool, device=decoded_ids.device)
    is_stop = torch.isin(decoded_ids, torch.tensor(sorted(stop_ids), device=decoded_ids.device))
    positions = torch.arange(k, device=decoded_ids.device).expand(batch, k)
    first = torch.where(is_stop, positions, torch.full_like(positions, k)).amin(dim=1)
    first = torch.where(first == 0, torch.full_like(first, k), first)  # c == 0: keep everything
    return positions < first.unsqueeze(1)


def commit_schedule(k: int, steps: int) -> list[int]:
    """How many slots each of the S steps commits (reference's ``1 - t_{s+1}/t_s`` rule, fp32 as there)."""
    timesteps = torch.linspace(1, SCHEDULE_EPS, steps + 1)
    remaining, counts = k, []
    for step in range(steps):
        if remaining == 0:
            counts.append(0)
            continue
        if step == steps - 1:
            n = remaining
        else:
            n = max(1, int(remaining * (1 - timesteps[step + 1] / timesteps[step])))
        n = min(n, remaining)
        counts.append(n)
        remaining -= n
    return counts


@torch.no_grad()
def read_out(
    backbone,
    batch: EncodedBatch,
    *,
    config: ReadoutConfig = ReadoutConfig(),
    stop_ids: frozenset[int] | Sequence[int] = frozenset(),
    content_ids: Sequence[Sequence[int]] | None = None,
    keep_logits: bool = False,
) -> Readout:
    """Run the backbone on ``batch`` and read its K mask slots.

    Parameters
    ----------
    backbone:
        An object implementing :class:`~pyserini_diffretriever.backbones.base.Backbone`.
    batch:
        From :class:`~pyserini_diffretriever.representation.inputs.InputBuilder`.
    config:
        Logit alignment, denoising steps, sparse settings and the logits memory cap.
    stop_ids:
        See :func:`stop_token_ids`; empty disables truncation.
    content_ids:
        Per-row allowed sparse ids (:func:`~.content_words.content_token_ids`); None skips the sparse part.
    keep_logits:
        Also return the ``[B, K, V]`` slot logits.
    """
    shift = logits_shift(config.logits, backbone.spec)
    device = device_of(backbone)
    ids = batch.input_ids.to(device)
    mask = batch.attention_mask.to(device)
    n_rows, k, start = ids.shape[0], batch.k, batch.mask_start
    if content_ids is not None and len(content_ids) != n_rows:
        raise ValueError(f"got content ids for {len(content_ids)} rows, batch has {n_rows}")
    chunk = logits_chunk_rows(config.max_logits_bytes, k, backbone.spec.vocab_size)
    step = _DenoiseStep(backbone, config, SlotOutputs(n_rows, k, device), ids.clone(), start, keep_logits)
    step.content = pad_content_ids(content_ids, device) if content_ids is not None else None
    remaining = k
    for n_commit in commit_schedule(k, config.denoise_steps):
        if n_commit == 0:
            break
        hidden = backbone.hidden_states(step.current, mask)
        if hidden.shape[:2] != ids.shape:
            raise ReadoutError(f"backbone returned hidden states {tuple(hidden.shape)} for ids {tuple(ids.shape)}")
        slot_hidden = hidden[:, start : start + k]
        check_finite(slot_hidden, "slot hidden states")
        step.out.dense_buffer(hidden.shape[-1])
        for lo in range(0, n_rows, chunk):
            logit_hidden = hidden[lo : min(lo + chunk, n_rows), start - shift : start + k - shift]
            step.commit_chunk(lo, slot_hidden, logit_hidden, n_commit, last=n_commit == remaining)
        remaining -= n_commit
        del hidden, slot_hidden
    return step.out.readout(stop_truncation(step.out.decoded, stop_ids))


class _DenoiseStep:
    """One denoising step's work on a chunk of rows: pick the slots to commit, capture their outputs, re-mask."""

    def __init__(self, backbone, config: ReadoutConfig, out: SlotOutputs, current, start: int, keep_logits: bool):
        self.backbone, self.config, self.out = backbone, config, out
        self.current, self.start, self.keep_logits = current, start, keep_logits
        self.committed = torch.zeros((out.rows, out.k), dtype=torch.bool, device=out.device)
        self.content: tuple[torch.Tensor, torch.Tensor] | None = None

    def commit_chunk(self, lo: int, slot_hidden, logit_hidden, n_commit: int, last: bool) -> None:
        """Commit ``n_commit`` still-masked slots of rows ``lo:lo+len(logit_hidden)`` (all of them when ``last``)."""
        hi = lo + logit_hidden.shape[0]
        k, start = self.out.k, self.start
        logits = self.backbone.vocab_logits(logit_hidden).float()
        check_finite(logits, "slot logits", lo)
        argmax = logits.argmax(dim=-1)
        # S = 1 or the last step: every remaining slot, no confidence needed
        select = ~self.committed[lo:hi] if last else _most_confident(logits, self.committed[lo:hi], n_commit)
        self.out.dense[lo:hi][select] = slot_hidden[lo:hi][select].float()
        self.out.decoded[lo:hi][select] = argmax[select]
        if self.content is not None:
            self._capture_impacts(logits, lo, hi, select)
        if self.keep_logits:
            self.out.logits_buffer(logits.shape[-1])[lo:hi][select] = logits[select]
        self.committed[lo:hi] |= select
        self.current[lo:hi, start : start + k] = torch.where(select, argmax, self.current[lo:hi, start : start + k])
        del logits

    def _capture_impacts(self, logits, lo: int, hi: int, select) -> None:
        ids_c, weights_c = slot_impacts(
            logits,
            self.content[0][lo:hi],
            self.content[1][lo:hi],
            mask_token_id=self.backbone.spec.mask_token_id,
            top_k=self.config.sparse_top_k,
            quantization=self.config.quantization,
            rounding=self.config.rounding,
        )
        sparse_ids, sparse_weights = self.out.sparse_buffers(ids_c.shape[-1])
        sparse_ids[lo:hi][select] = ids_c[select]
        sparse_weights[lo:hi][select] = weights_c[select]


def _most_confident(logits: torch.Tensor, committed: torch.Tensor, n_commit: int) -> torch.Tensor:
    """``[rows, K]`` bool: per row the ``n_commit`` still-masked slots of highest confidence (negative entropy)."""
    probs = torch.softmax(logits, dim=-1)
    confidence = (probs * torch.log(probs + ENTROPY_EPS)).sum(dim=-1)
    del probs
    select = torch.zeros(committed.shape, dtype=torch.bool, device=logits.device)
    for row in range(committed.shape[0]):
        masked = torch.nonzero(~committed[row]).flatten()
        take = min(n_commit, masked.numel())
        if take:
            best = confidence[row, masked].topk(take).indices
            select[row, masked[best]] = True
    return select

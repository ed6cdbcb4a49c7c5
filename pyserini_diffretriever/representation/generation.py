"""PromptReps read-out for autoregressive backbones (docs/method.md §9): one prompt pass, then N-1 greedy steps.

This is the baseline DiffRetriever is compared against: an autoregressive LM pays one sequential forward
pass per representative token, where a diffusion LM reads K mask slots from one pass (:mod:`.readout`).

Layout and slots. The prompt ends with the suffix (the opening quote of ``The word(s) is/are: "``); there
are no mask slots and no tail. For ``N`` slots:

* slot 0 = post-final-norm hidden state and logits at the last prompt position (the quote), from the
  prompt pass (causal, left padded, position ids counting real tokens);
* generated token k (k = 1..N-1) = argmax of slot k-1's logits (greedy); it is fed back through the KV cache
  with the attention mask grown by one, and slot k = hidden state and logits at its position. So slot k's
  logits predict token k+1, and the last slot's argmax is never fed back: 1 + (N-1) forward passes.

Stop truncation (§9). Scanning generated tokens 1..N-1, the first one that is a stop id zeroes its own slot
and every later slot (dense and sparse); slot 0 is always kept. Stop ids (:func:`ar_stop_token_ids`) are the
tokenizer's special ids plus exactly the id(s) of ``"`` (a merged token such as ``".`` does not stop, as in
the reference). Once every row of the batch has stopped, the remaining steps could only fill zeroed slots,
so they are skipped (outputs are unchanged; fewer passes).

Everything downstream is DiffRetriever's own code: per slot the content-word filter, ``log(1 + relu)``,
top-k and integer quantisation (:func:`~.sparse.slot_impacts`), max-pooling over slots
(:meth:`~.readout.Readout.sparse`), and the dense normalisation / single / multi vectors of :mod:`.dense`.
The result is a :class:`~.readout.Readout`, exactly what the diffusion read-out returns.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .checks import ReadoutError, check_finite, device_of
from .inputs import EncodedBatch
from .readout import Readout, ReadoutConfig, SlotOutputs
from .sparse import pad_content_ids, slot_impacts

QUOTE = '"'


def ar_stop_token_ids(tokenizer) -> frozenset[int]:
    """Stop set of the PromptReps read-out: special ids of the tokenizer plus the id(s) of ``"``.

    Special ids = ``tokenizer.all_special_ids`` and every added token flagged ``special`` (Llama-3 names only
    BOS/EOS, yet ``<|end_of_text|>``, ``<|start_header_id|>`` and the reserved tokens are special too).
    """
    ids = {int(i) for i in tokenizer.all_special_ids}
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(int(index) for index, token in decoder.items() if getattr(token, "special", False))
    ids.update(int(i) for i in tokenizer.encode(QUOTE, add_special_tokens=False))
    return frozenset(ids)


def _check_request(config: ReadoutConfig, batch: EncodedBatch, n: int) -> None:
    """Refuse diffusion-only settings, a non-positive N and a batch built for mask slots."""
    _check_config(config)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r}: the number of representative tokens must be an integer >= 1")
    if not batch.autoregressive:
        raise ValueError(
            "generate_representatives needs an autoregressive batch (no mask slots, no tail); "
            "build it with InputBuilder(..., autoregressive=True)"
        )


def _check_config(config: ReadoutConfig) -> None:
    if config.denoise_steps != 1:
        raise ValueError(
            f"denoise_steps={config.denoise_steps}: autoregressive backbones generate their "
            "slots one by one; denoising steps apply to diffusion backbones only (use 1)"
        )
    if config.logits != "unshifted":
        raise ValueError(
            f"logits={config.logits!r}: autoregressive slots are read where the reference reads "
            "them (slot k's logits predict token k+1); only 'unshifted' applies"
        )


@torch.no_grad()
def generate_representatives(
    backbone,
    batch: EncodedBatch,
    n: int,
    *,
    config: ReadoutConfig = ReadoutConfig(),
    stop_ids: frozenset[int] | Sequence[int] = frozenset(),
    content_ids: Sequence[Sequence[int]] | None = None,
    keep_logits: bool = False,
) -> Readout:
    """Read ``n`` PromptReps slots from an autoregressive backbone (prompt pass + ``n - 1`` cached steps).

    Parameters
    ----------
    backbone:
        A causal backbone with ``causal_forward(ids, mask, cache) -> (hidden, cache)`` and ``vocab_logits``
        (:class:`~pyserini_diffretriever.backbones.autoregressive.CausalBackboneMixin`).
    batch:
        An autoregressive :class:`~.inputs.EncodedBatch` (prompt + text + suffix, left padded, no masks).
    n:
        Number of slots N >= 1 (the reference's ``num_pooled_tokens``; the fine-tuned PromptReps uses 4).
    config:
        Sparse settings (``sparse_top_k``, ``quantization``, ``rounding``) and the logits memory cap;
        ``denoise_steps`` must be 1 and ``logits`` ``"unshifted"``.
    stop_ids:
        See :func:`ar_stop_token_ids`; empty disables truncation.
    content_ids:
        Per-row allowed sparse ids; None skips the sparse part.
    keep_logits:
        Also return the ``[B, N, V]`` slot logits.

    Returns
    -------
    Readout
        ``dense [B, N, H]`` (truncated slots zeroed), ``slot_mask``, ``decoded_ids`` (argmax of every slot),
        per-slot sparse impacts and optionally the logits.
    """
    _check_request(config, batch, n)
    device = device_of(backbone)
    ids = batch.input_ids.to(device)
    mask = batch.attention_mask.to(device)
    rows = ids.shape[0]
    if content_ids is not None and len(content_ids) != rows:
        raise ValueError(f"got content ids for {len(content_ids)} rows, batch has {rows}")
    content = pad_content_ids(content_ids, device) if content_ids is not None else None
    stop = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device) if stop_ids else None
    chunk = max(1, config.max_logits_bytes // (int(backbone.spec.vocab_size) * 4))

    hidden, cache = backbone.causal_forward(ids, mask)
    if hidden.shape[:2] != ids.shape:
        raise ReadoutError(f"backbone returned hidden states {tuple(hidden.shape)} for ids {tuple(ids.shape)}")
    out = SlotOutputs(rows, n, device)
    out.dense_buffer(hidden.shape[-1])
    slot_mask = torch.zeros((rows, n), dtype=torch.bool, device=device)
    stopped = torch.zeros(rows, dtype=torch.bool, device=device)
    state = hidden[:, -1]
    del hidden
    for k in range(n):
        if k > 0:
            token = out.decoded[:, k - 1]
            if stop is not None:
                stopped |= torch.isin(token, stop)
            if bool(stopped.all()):
                break  # every row has stopped: later slots stay zero whatever they would hold
            mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=device)], dim=1)
            hidden, cache = backbone.causal_forward(token.unsqueeze(1), mask, cache)
            state = hidden[:, -1]
            del hidden
        slot_mask[:, k] = ~stopped
        check_finite(state, f"slot {k} hidden states")
        out.dense[:, k] = state.float()
        for lo in range(0, rows, chunk):
            _read_slot(backbone, config, out, state[lo : lo + chunk], k, lo, content, keep_logits)
    del cache
    return out.readout(slot_mask, mask_logits=True)


def _read_slot(backbone, config: ReadoutConfig, out: SlotOutputs, state, k: int, lo: int, content, keep_logits: bool):
    """Slot ``k`` of rows ``lo:lo+len(state)``: logits, greedy token, sparse impacts and (optionally) the logits."""
    hi = lo + state.shape[0]
    logits = backbone.vocab_logits(state).float()
    check_finite(logits, f"slot {k} logits", lo)
    out.decoded[lo:hi, k] = logits.argmax(dim=-1)
    if content is not None:
        ids_c, weights_c = slot_impacts(
            logits.unsqueeze(1),
            content[0][lo:hi],
            content[1][lo:hi],
            mask_token_id=None,
            top_k=config.sparse_top_k,
            quantization=config.quantization,
            rounding=config.rounding,
        )
        sparse_ids, sparse_weights = out.sparse_buffers(ids_c.shape[-1])
        sparse_ids[lo:hi, k] = ids_c[:, 0]
        sparse_weights[lo:hi, k] = weights_c[:, 0]
    if keep_logits:
        out.logits_buffer(logits.shape[-1])[lo:hi, k] = logits

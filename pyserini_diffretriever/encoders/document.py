"""``DiffRetrieverDocumentEncoder``: a :class:`pyserini.encode.DocumentEncoder` for passages.

Importing this module imports :mod:`pyserini.encode`, which (in Pyserini 2.3) starts the JVM; the package
root prepares Java first (:mod:`pyserini_diffretriever._java`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyserini.encode import DocumentEncoder

from ._common import SideEncoderMixin
from .model import RepresentationBatch, TokenizedTexts


class DiffRetrieverDocumentEncoder(SideEncoderMixin, DocumentEncoder):
    """Encode passages with a diffusion LM's K representative tokens (DiffRetriever).

    Parameters
    ----------
    model_name_or_path:
        Checkpoint folder or hub id (Dream / LLaDA), or a shared :class:`DiffRetrieverModel` /
        :class:`LoadedBackbone` (then ``device``, ``dtype`` and ``adapter`` are ignored). Pyserini's
        ``model_name=`` keyword is accepted as an alias.
    representation:
        What :meth:`encode` returns: ``"dense"`` (``[B, H]`` float32 single vectors for FAISS),
        ``"multi"`` (per passage ``[K', H]`` float32 normalised vectors for MaxSim) or ``"impact"``
        (per passage ``{term: int}`` for Lucene impact indexes).
    k:
        Passage mask slots K_p; default: the K an adapter was trained with, else per backbone (Dream 16,
        LLaDA 4).
    prompt:
        ``"one"``, ``"few"`` (default) or ``"three"``, or a YAML path with the four prompt keys.
    max_length:
        Token budget for prompt + passage text (the K masks and 3 tail tokens come on top).
    device, dtype, adapter:
        Where and how to load the backbone; ``adapter`` is an optional LoRA adapter merged after loading.
    batch_size:
        Passages per forward pass inside one :meth:`encode` call.
    logits:
        ``"unshifted"`` (reference) or ``"shifted"`` (Dream's next-token alignment; ablation).
    denoise_steps:
        S >= 1 (1 = the paper's single pass).
    title_separator:
        ``title + title_separator + text`` when titles are given.
    sparse_top_k, quantization, rounding:
        Impact settings: top entries per slot, integer scale, ``"truncate"`` (reference) or ``"round"``.
    """

    side = "passage"

    def encode(
        self,
        texts: Sequence[str],
        titles: Sequence[str | None] | None = None,
        max_length: int | None = None,
        fp16: bool = False,
        **kwargs,
    ):
        """Encode a batch of passages in this encoder's representation.

        Parameters
        ----------
        texts, titles:
            Passage texts and optional titles (Pyserini's ``--fields title text``).
        max_length:
            Overrides the constructor's budget for this call.
        fp16:
            Float16 autocast on CUDA; on CPU a warning is logged and the dtype is kept.
        **kwargs:
            Ignored (Pyserini's CLI passes e.g. ``add_sep`` and one list per extra field).

        Returns
        -------
        np.ndarray | list[np.ndarray] | list[dict[str, int]]
            ``[B, H]`` float32 (dense), per passage ``[K', H]`` float32 (multi), or ``{term: int}`` (impact).
        """
        batch = self._side.encode(
            texts, titles, max_length=max_length, fp16=fp16, representations=(self.representation,)
        )
        return self._select(batch)

    def encode_all(
        self,
        texts: Sequence[str],
        titles: Sequence[str | None] | None = None,
        max_length: int | None = None,
        fp16: bool = False,
        *,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        tokenized: TokenizedTexts | None = None,
        representations: Sequence[str] | None = None,
    ) -> RepresentationBatch:
        """Dense, multi and impact representations of the passages from one forward pass per batch.

        ``representations`` limits what is computed (default all three; leaving ``impact`` out skips the sparse
        read-out).

        The passages are batched by length inside the call (longest first, at most ``batch_size`` per pass, default
        the constructor's, and at most ``max_tokens`` computed tokens) and returned in input order; ``tokenized``
        is :meth:`tokenize`'s result for the same passages (the encode pipeline tokenizes ahead of the model).
        """
        return self._side.encode(
            texts,
            titles,
            max_length=max_length,
            fp16=fp16,
            batch_size=batch_size,
            max_tokens=max_tokens,
            tokenized=tokenized,
            representations=representations,
        )

    def tokenize(
        self, texts: Sequence[str], titles: Sequence[str | None] | None = None, max_length: int | None = None
    ) -> TokenizedTexts:
        """The passages joined with their titles and tokenized; ``lengths`` are whole input rows (prompt + slots)."""
        return self._side.tokenize(texts, titles, max_length=max_length)

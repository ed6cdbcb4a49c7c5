"""From texts to DiffRetriever representations: prompts, exact inputs, the one-pass read-out, dense
(single / multi-vector) and sparse (impact) vectors, the content-word filter and Lucene term strings.

Pure torch/numpy code on top of the :class:`~pyserini_diffretriever.backbones.base.Backbone` protocol;
nothing here imports Pyserini or starts the JVM.

Names are resolved lazily (as in the top-level package), so importing one torch-free module such as
:mod:`.bucketing` or :mod:`.prompts` does not load torch, transformers and NLTK: the encode CLI's driver and its
child processes need only those. At package level ``content_words`` is the submodule (its function of the same
name is ``representation.content_words.content_words``): a lazily loaded package cannot let a function shadow a
submodule that another import may already have bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

_LAZY = {  # public name -> the module (of this package) that defines it
    "content_token_ids": "content_words",
    "stopwords": "content_words",
    "word_tokenize": "content_words",
    "l2_normalize": "dense",
    "maxsim": "dense",
    "multi_vectors": "dense",
    "single_vector": "dense",
    "N_TAIL": "inputs",
    "SENTINEL": "inputs",
    "EncodedBatch": "inputs",
    "InputBuilder": "inputs",
    "InputError": "inputs",
    "join_title": "inputs",
    "render_prompt_ids": "inputs",
    "tail_ids": "inputs",
    "PROMPT_VARIANTS": "prompts",
    "SIDES": "prompts",
    "PromptError": "prompts",
    "PromptTemplate": "prompts",
    "adapt_for_k": "prompts",
    "load_prompt": "prompts",
    "prompt_for": "prompts",
    "LOGITS_MODES": "readout",
    "Readout": "readout",
    "ReadoutConfig": "readout",
    "ReadoutError": "readout",
    "commit_schedule": "readout",
    "read_out": "readout",
    "stop_token_ids": "readout",
    "stop_truncation": "readout",
    "pad_content_ids": "sparse",
    "pool_slots": "sparse",
    "quantize": "sparse",
    "slot_impacts": "sparse",
    "sparse_dot": "sparse",
    "TermStringError": "terms",
    "TermVocabulary": "terms",
    "term_vocabulary": "terms",
    "vocabulary_fingerprint": "terms",
}

__all__ = [
    "LOGITS_MODES",
    "N_TAIL",
    "PROMPT_VARIANTS",
    "SENTINEL",
    "SIDES",
    "EncodedBatch",
    "InputBuilder",
    "InputError",
    "PromptError",
    "PromptTemplate",
    "Readout",
    "ReadoutConfig",
    "ReadoutError",
    "TermStringError",
    "TermVocabulary",
    "adapt_for_k",
    "commit_schedule",
    "content_token_ids",
    "join_title",
    "l2_normalize",
    "load_prompt",
    "maxsim",
    "multi_vectors",
    "pad_content_ids",
    "pool_slots",
    "prompt_for",
    "quantize",
    "read_out",
    "render_prompt_ids",
    "single_vector",
    "slot_impacts",
    "sparse_dot",
    "stop_token_ids",
    "stop_truncation",
    "stopwords",
    "tail_ids",
    "term_vocabulary",
    "vocabulary_fingerprint",
    "word_tokenize",
]
assert set(__all__) == set(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from .content_words import content_token_ids, stopwords, word_tokenize
    from .dense import l2_normalize, maxsim, multi_vectors, single_vector
    from .inputs import (
        N_TAIL,
        SENTINEL,
        EncodedBatch,
        InputBuilder,
        InputError,
        join_title,
        render_prompt_ids,
        tail_ids,
    )
    from .prompts import PROMPT_VARIANTS, SIDES, PromptError, PromptTemplate, adapt_for_k, load_prompt, prompt_for
    from .readout import (
        LOGITS_MODES,
        Readout,
        ReadoutConfig,
        ReadoutError,
        commit_schedule,
        read_out,
        stop_token_ids,
        stop_truncation,
    )
    from .sparse import pad_content_ids, pool_slots, quantize, slot_impacts, sparse_dot
    from .terms import TermStringError, TermVocabulary, term_vocabulary, vocabulary_fingerprint

"""From texts to DiffRetriever representations: prompts, exact inputs, the one-pass read-out, dense
(single / multi-vector) and sparse (impact) vectors, the content-word filter and Lucene term strings.

Pure torch/numpy code on top of the :class:`~pyserini_diffretriever.backbones.base.Backbone` protocol;
nothing here imports Pyserini or starts the JVM.
"""

from .content_words import content_token_ids, content_words, stopwords, word_tokenize
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
    "content_words",
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

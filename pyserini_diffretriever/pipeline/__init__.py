"""Library pipelines that drive the encoders and writers; the command lines are thin layers over them.

:mod:`.encoding`: a corpus shard -> one or more index folders, resumably and atomically
(:func:`~.encoding.encode_corpus`), plus what its manifests record (:func:`~.encoding.run_settings`,
:func:`~.encoding.expected_query_settings`).
:mod:`.distributed`: the same driver with the forward passes on Ray workers
(:func:`~.distributed.encode_corpus_on_ray`; Ray imported only then), byte-identical output.

Importing this package loads numpy only; the encoders (torch, Pyserini) are imported when a record needs them.
"""

from __future__ import annotations

from .encoding import (
    DEFAULT_CHECKPOINT_EVERY,
    encode_corpus,
    expected_query_settings,
    run_settings,
    shard_range,
)

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "encode_corpus",
    "expected_query_settings",
    "run_settings",
    "shard_range",
]

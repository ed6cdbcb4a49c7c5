"""Reproducing the paper's BEIR table: named configurations, BEIR datasets, the resumable pipeline, the table.

=============================  ================================================================================
module                         what
=============================  ================================================================================
:mod:`.configurations`         the paper's systems (backbone, adapter, K, prompt, paper figure), by name
:mod:`.datasets`               BEIR folders checked and turned into topics, qrels and Anserini flat documents
:mod:`.steps`                  step manifests: finished work is recognised and not redone
:mod:`.pipeline`               the plan (encode, index, search, fuse, evaluate per dataset x configuration)
:mod:`.evaluation`             Pyserini's trec_eval and reciprocal rank fusion
:mod:`.table`                  the result table in Markdown, CSV and JSON
:mod:`.estimate`               GPU time from corpus token counts and a per-token cost
=============================  ================================================================================

The command line is :mod:`pyserini_diffretriever.cli.reproduce` (``python -m pyserini_diffretriever.reproduce``).
Submodules are imported on use, so importing this package loads neither torch nor the JVM.
"""

"""Test collections converted to Pyserini formats (``corpus.jsonl``, ``topics.tsv``, TREC ``qrels.txt``).

Available: :mod:`pyserini_diffretriever.collections.cranfield` (``convert_cranfield``, ``load_cranfield``, ``export_beir``).
Submodules are not imported here, so ``python -m pyserini_diffretriever.collections.cranfield`` runs cleanly.
"""

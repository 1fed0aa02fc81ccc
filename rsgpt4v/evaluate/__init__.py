"""Predictions and metrics for captioning, VQA, grounding, counting and classification.

- :mod:`~rsgpt4v.evaluate.benchmarks`, :mod:`~rsgpt4v.evaluate.references`,
  :mod:`~rsgpt4v.evaluate.export_items`: evaluation items from converter records (RSVQA,
  DIOR-RSVG, caption datasets), an instructions file or an exported training file;
- :mod:`~rsgpt4v.evaluate.predict`: a model's answers (``rsgpt4v predict``);
  :mod:`~rsgpt4v.evaluate.predictions`: the predictions JSONL, also written by other systems;
- :mod:`~rsgpt4v.evaluate.scoring` with ``metrics_*`` and :mod:`~rsgpt4v.evaluate.normalize`:
  the scores (``rsgpt4v evaluate``); :mod:`~rsgpt4v.evaluate.results`: results.json / .md and
  ``rsgpt4v compare-runs``.

docs/evaluate.md has every metric's rule.
"""

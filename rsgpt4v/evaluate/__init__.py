"""Predictions and metrics for captioning, VQA, grounding, counting and classification."""

"""Prompt templates and rule phrasing pools, shipped as package data (``rsgpt4v.prompts``)."""

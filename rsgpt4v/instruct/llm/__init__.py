"""Hierarchical LLM generation: local, global and multi-turn passes on OpenAI-compatible VLMs."""

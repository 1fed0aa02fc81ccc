"""rsgpt4v: remote-sensing instruction data for multimodal LLMs, after RS-GPT4V (2406.12479)."""

__version__ = "0.1.0"

"""Fine-tuning of general multimodal LLMs on exported instruction data (``rsgpt4v.finetune``).

Mapped from the top-level ``finetune/`` folder by pyproject. The training stack is the optional
``train`` extra (torch, transformers, peft, accelerate) and is imported only here.
"""

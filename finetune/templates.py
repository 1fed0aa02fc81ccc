"""Training chat templates, one per known model family.

The hub templates of LLaVA-1.5 and Qwen-VL render the conversation but carry no
``{% generation %}`` markers, so transformers cannot say which tokens the assistant wrote
(finetune.md §4.2). These templates render the same text as the families' own templates and
wrap every assistant turn (its text and end-of-turn token) in a generation block, which gives
an exact assistant-token mask after tokenisation. Messages use structured content:
``{"role": ..., "content": [{"type": "image"}, {"type": "text", "text": ...}]}``.
"""

from __future__ import annotations

# Vicuna v1 (LLaVA-1.5's conv_vicuna_v1, sep " ", sep2 "</s>"):
# "<s>SYSTEM USER: <image>\nQ ASSISTANT: A</s>USER: Q2 ASSISTANT: A2</s>".
LLAVA_TEMPLATE = (
    '{%- set ns = namespace(answered=false, system="A chat between a curious human and an '
    "artificial intelligence assistant. The assistant gives helpful, detailed, and polite "
    "answers to the human's questions.\") -%}"
    "{{- bos_token if bos_token else '' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = message['content'] | selectattr('type', 'equalto', 'text') "
    "| map(attribute='text') | join(' ') -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- ns.system -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- 'USER: ' if ns.answered else ' USER: ' -}}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}{%- else -%}{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- ' ASSISTANT:' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{%- generation -%}"
    "{{- ' ' + (message['content'] | selectattr('type', 'equalto', 'text') "
    "| map(attribute='text') | join(' ')) + eos_token -}}"
    "{%- endgeneration -%}"
    "{%- set ns.answered = true -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

# ChatML with Qwen-VL vision tokens (Qwen2-VL and Qwen2.5-VL share it).
QWEN_VL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- generation -%}"
    "{{- (message['content'] | selectattr('type', 'equalto', 'text') "
    "| map(attribute='text') | join(' ')) + '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- else -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

TRAINING_TEMPLATES: dict[str, str] = {
    "llava": LLAVA_TEMPLATE,
    "qwen2vl": QWEN_VL_TEMPLATE,
    "qwen25vl": QWEN_VL_TEMPLATE,
}

"""The tiny offline models reload through the Auto classes and run a forward pass."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rsgpt4v.finetune.tiny import main, save_tiny_model  # noqa: E402


def test_tiny_llava_reloads_through_auto_classes(tmp_path):
    out = save_tiny_model(tmp_path / "llava", "llava")
    model = transformers.AutoModelForImageTextToText.from_pretrained(out)
    processor = transformers.AutoProcessor.from_pretrained(out)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 200_000
    assert "generation" in processor.chat_template  # the assistant mask needs the markers
    assert (out / "model.safetensors").is_file()


def test_tiny_qwen2vl_reloads_model_and_tokenizer(tmp_path):
    out = save_tiny_model(tmp_path / "qwen", "qwen2vl")
    model = transformers.AutoModelForImageTextToText.from_pretrained(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert tokenizer.convert_tokens_to_ids("<|image_pad|>") == model.config.image_token_id


def test_same_seed_same_weights_and_cli(tmp_path, capsys):
    from safetensors.torch import load_file

    a = save_tiny_model(tmp_path / "a", "llava", seed=3)
    main([str(tmp_path / "b"), "--family", "llava", "--seed", "3"])
    assert str(tmp_path / "b") in capsys.readouterr().out
    wa, wb = load_file(a / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_unknown_family_is_refused(tmp_path):
    from rsgpt4v.errors import RsgptError

    with pytest.raises(RsgptError, match="unknown tiny model family"):
        save_tiny_model(tmp_path, "gpt2")

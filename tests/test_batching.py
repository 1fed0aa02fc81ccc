"""Token-budget batching and packing: every sample once, the budget kept, less padding."""

from __future__ import annotations

import logging
import random

import pytest
import torch

from rsgpt4v.errors import InputError
from rsgpt4v.finetune.batching import (
    IGNORE_INDEX,
    TokenBudgetBatchSampler,
    pack_examples,
    padding_waste,
)


def skewed_lengths(count: int = 2000, seed: int = 0) -> list[int]:
    """Like our exports: 576 image tokens plus text, most short, a long tail of reasoning."""
    rng = random.Random(seed)
    return [576 + min(700, int(rng.lognormvariate(4.5, 0.8))) + 50 for _ in range(count)]


def test_every_index_exactly_once_and_budget_kept():
    lengths = skewed_lengths()
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=8192, seed=3)
    batches = list(sampler)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(len(lengths)))
    assert all(max(lengths[i] for i in b) * len(b) <= 8192 for b in batches)
    assert len(sampler) == len(batches)


def test_deterministic_under_seed_and_new_order_per_epoch():
    lengths = skewed_lengths(500)
    first = list(TokenBudgetBatchSampler(lengths, max_tokens=6000, seed=7))
    again = list(TokenBudgetBatchSampler(lengths, max_tokens=6000, seed=7))
    other_seed = list(TokenBudgetBatchSampler(lengths, max_tokens=6000, seed=8))
    assert first == again
    assert first != other_seed
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=6000, seed=7)
    sampler.set_epoch(1)
    epoch_one = list(sampler)
    assert epoch_one != first
    assert sorted(i for b in epoch_one for i in b) == list(range(500))
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_unshuffled_order_is_stable():
    lengths = [5, 1, 9, 3, 7, 2]
    batches = list(TokenBudgetBatchSampler(lengths, max_tokens=10, shuffle=False))
    assert batches == [[2], [4], [0, 3], [5, 1]]


def test_padding_waste_lower_than_random_batching():
    lengths = skewed_lengths()
    ours = list(TokenBudgetBatchSampler(lengths, max_tokens=8192, seed=0))
    mean_size = round(len(lengths) / len(ours))
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    naive = [order[i : i + mean_size] for i in range(0, len(order), mean_size)]
    ours_waste = padding_waste(ours, lengths)
    naive_waste = padding_waste(naive, lengths)
    assert ours_waste < 0.25 * naive_waste, (ours_waste, naive_waste)


def test_oversized_sample_alone_with_warning(caplog):
    lengths = [10, 40, 12, 11]
    with caplog.at_level(logging.WARNING):
        sampler = TokenBudgetBatchSampler(lengths, max_tokens=30, seed=0)
    assert "longer than max_tokens=30" in caplog.text
    batches = list(sampler)
    assert [1] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]


def test_bad_lengths_rejected():
    with pytest.raises(InputError, match="sample 2"):
        TokenBudgetBatchSampler([3, 4, 0], max_tokens=10)


def test_pack_concatenates_with_positions_reset_and_boundary_labels_masked():
    examples = [
        {"input_ids": [1, 2, 3, 4], "labels": [-100, -100, 3, 4]},
        {"input_ids": [5, 6], "labels": [5, 6]},
        {"input_ids": [7, 8, 9], "labels": [7, 8, 9]},
        {"input_ids": [10, 11, 12, 13, 14, 15], "labels": [10, 11, 12, 13, 14, 15]},
    ]
    rows = pack_examples(examples, max_length=7)
    assert sorted(i for row in rows for i in row["example_ids"]) == [0, 1, 2, 3]
    assert all(len(row["input_ids"]) <= 7 for row in rows)
    assert len(rows) == 3
    for row in rows:
        assert len(row["input_ids"]) == len(row["labels"]) == len(row["position_ids"])
        offset = 0
        for index in row["example_ids"]:
            source = examples[index]
            n = len(source["input_ids"])
            assert row["input_ids"][offset : offset + n] == source["input_ids"]
            assert row["position_ids"][offset : offset + n] == list(range(n))
            assert row["labels"][offset] == IGNORE_INDEX
            assert row["labels"][offset + 1 : offset + n] == source["labels"][1:]
            offset += n


def test_pack_rejects_misaligned_labels():
    with pytest.raises(InputError, match="example 1"):
        pack_examples([{"input_ids": [1], "labels": [1]}, {"input_ids": [1, 2], "labels": [1]}], 8)


def test_packed_logits_equal_unpacked_with_sdpa():
    """transformers 5 reads restarting position_ids as a block-diagonal mask (no attention mask)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).eval()
    examples = [
        {"input_ids": [3, 9, 4, 11, 5], "labels": [3, 9, 4, 11, 5]},
        {"input_ids": [7, 8, 2], "labels": [7, 8, 2]},
    ]
    (row,) = pack_examples(examples, max_length=8)
    with torch.no_grad():
        packed = model(
            input_ids=torch.tensor([row["input_ids"]]),
            position_ids=torch.tensor([row["position_ids"]]),
            use_cache=False,
        ).logits[0]
        offset = 0
        for index in row["example_ids"]:
            ids = examples[index]["input_ids"]
            alone = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[offset : offset + len(ids)], alone)
            offset += len(ids)

"""Batches sized by tokens, not by sample count, and packing of short samples.

Our exports mix 50-token captions with 700-token reasoning answers behind the same 576 image
tokens. A fixed batch size padded to the longest sample spends much of each step on padding, and
a batch size safe for the longest samples wastes memory on the short ones. Two remedies:

- :class:`TokenBudgetBatchSampler` groups samples of similar length and fills each batch up to a
  padded-token budget (``max length in batch x batch size <= max_tokens``);
- :func:`pack_examples` concatenates several tokenised samples into one row with ``position_ids``
  restarting at 0 for each sample, which transformers 5 reads as sample boundaries when no
  attention mask is passed (flash-attention varlen, or a block-diagonal mask). This is the
  text-only form the benchmark uses; training packs encoded multimodal samples, 3-D mRoPE
  positions of Qwen2/2.5-VL included, through :mod:`rsgpt4v.finetune.packing`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from rsgpt4v.errors import InputError, RsgptError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Index batches whose padded size (longest sample x batch size) fits ``max_tokens``.

    Each epoch: shuffle the indices (seeded by ``seed + epoch``), cut them into mega-chunks of
    ``mega_chunk`` samples, sort each chunk by length (longest first), fill batches greedily,
    then shuffle the batch order. Sorting only inside a chunk keeps batches similar in length
    while the data order stays random across the epoch. A sample longer than ``max_tokens``
    cannot fit any batch; it gets a batch of its own (with a warning) rather than being dropped.
    Use ``set_epoch`` (as with ``DistributedSampler``) to get a new order per epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int,
        shuffle: bool = True,
        seed: int = 0,
        mega_chunk: int = 512,
    ) -> None:
        if max_tokens < 1:
            raise RsgptError(f"max_tokens must be a positive token count, got {max_tokens}")
        if mega_chunk < 1:
            raise RsgptError(f"mega_chunk must be a positive sample count, got {mega_chunk}")
        bad = [i for i, n in enumerate(lengths) if n < 1]
        if bad:
            raise InputError(
                "sample lengths must be at least 1 token",
                entry=f"sample {bad[0]}",
                value=lengths[bad[0]],
            )
        self.lengths = [int(n) for n in lengths]
        self.max_tokens = int(max_tokens)
        self.shuffle = shuffle
        self.seed = seed
        self.mega_chunk = mega_chunk
        self.epoch = 0
        too_long = [i for i, n in enumerate(self.lengths) if n > self.max_tokens]
        if too_long:
            log.warning(
                "%d sample(s) are longer than max_tokens=%d (first: sample %d, %d tokens); "
                "each goes into a batch of its own",
                len(too_long),
                self.max_tokens,
                too_long[0],
                self.lengths[too_long[0]],
            )
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` yields (same epoch, same order)."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """The batches of the current epoch, computed once per epoch."""
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._make_batches())
        return self._cache[1]

    def _make_batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        count = len(self.lengths)
        order = list(range(count))
        if self.shuffle:
            order = torch.randperm(count, generator=generator).tolist()
        batches: list[list[int]] = []
        for start in range(0, count, self.mega_chunk):
            chunk = sorted(order[start : start + self.mega_chunk], key=lambda i: -self.lengths[i])
            batches.extend(self._fill(chunk))
        if self.shuffle:
            permutation = torch.randperm(len(batches), generator=generator).tolist()
            batches = [batches[i] for i in permutation]
        return batches

    def _fill(self, longest_first: list[int]) -> list[list[int]]:
        """Greedy fill: the first sample of a batch is its longest, so it sets the padded width."""
        batches: list[list[int]] = []
        current: list[int] = []
        width = 0
        for index in longest_first:
            length = self.lengths[index]
            if current and max(width, length) * (len(current) + 1) > self.max_tokens:
                batches.append(current)
                current, width = [], 0
            current.append(index)
            width = max(width, length)
        if current:
            batches.append(current)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def padding_waste(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Fraction of padded token slots that are padding when each batch pads to its longest."""
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if batch)
    real = sum(lengths[i] for batch in batches for i in batch)
    return 1.0 - real / padded if padded else 0.0


def pack_examples(examples: Sequence[dict], max_length: int) -> list[dict]:
    """Concatenate tokenised examples into rows of at most ``max_length`` tokens.

    First-fit decreasing: examples are taken longest first and each goes into the first row with
    room, which fills rows tighter than packing in data order. Each example needs ``input_ids``
    and ``labels`` (lists of ints, equal lengths). A row gets ``input_ids``, ``labels``,
    ``position_ids`` (0..n-1 per example) and ``example_ids`` (which inputs it holds, in order).
    The first label of every example is set to -100: the model shifts labels left, so that label
    would otherwise be predicted from the previous example's last token. An example longer than
    ``max_length`` gets a row of its own (with a warning), never truncated.
    """
    if max_length < 1:
        raise RsgptError(f"max_length must be a positive token count, got {max_length}")
    for number, example in enumerate(examples):
        if len(example["input_ids"]) != len(example["labels"]):
            raise InputError(
                f"input_ids has {len(example['input_ids'])} tokens but labels has "
                f"{len(example['labels'])}; they must align token for token",
                entry=f"example {number}",
            )
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    rows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        length = len(examples[index]["input_ids"])
        if length > max_length:
            log.warning(
                "example %d has %d tokens, more than max_length=%d; it is packed alone",
                index,
                length,
                max_length,
            )
        target = next((r for r, free in enumerate(room) if free >= length), None)
        if target is None:
            rows.append([])
            room.append(max_length)
            target = len(rows) - 1
        rows[target].append(index)
        room[target] -= length
    return [_concatenate(examples, members) for members in rows]


def _concatenate(examples: Sequence[dict], members: list[int]) -> dict:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for index in members:
        ids = list(examples[index]["input_ids"])
        example_labels = list(examples[index]["labels"])
        example_labels[0] = IGNORE_INDEX
        input_ids.extend(ids)
        labels.extend(example_labels)
        position_ids.extend(range(len(ids)))
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "example_ids": list(members),
    }

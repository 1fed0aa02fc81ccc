"""The random stream of one rule task on one record: cheap to seed, the same on every Python.

Each (seed, record, task) gets its own stream, so a record's phrasings do not depend on which
other records or tasks run. ``random.Random(text)`` costs more to seed (SHA-512 and a Mersenne
Twister key schedule, ~10 µs) than most rules spend on a record, and its ``choice``/``sample``
algorithms may change between Python versions, changing the data a seed gives. This stream is
SplitMix64 (Steele, Lea and Flood 2014) started from an 8-byte BLAKE2b digest of the seed text:
seeding is one hash, each draw a few integer operations, and the algorithms below are ours.
Reducing a 64-bit draw modulo a pool size of at most a few thousand biases a choice by less than
one part in 10^15, which no phrasing mix can show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableSequence, Sequence
from hashlib import blake2b
from typing import TypeVar

T = TypeVar("T")

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class TaskRandom:
    """The subset of ``random.Random`` the rules use, on a SplitMix64 stream."""

    __slots__ = ("_state",)

    def __init__(self, seed_text: str) -> None:
        digest = blake2b(seed_text.encode(), digest_size=8).digest()
        self._state = int.from_bytes(digest, "little")

    @classmethod
    def streams(cls, prefix: str) -> Callable[[str], TaskRandom]:
        """``name -> TaskRandom(prefix + name)`` for many names sharing one prefix.

        The prefix is hashed once and each name hashed on from a copy of that state (BLAKE2b
        gives the same digest when a text is fed in pieces): half the cost of hashing anew.
        """
        start = blake2b(prefix.encode(), digest_size=8)

        def stream(name: str) -> TaskRandom:
            hasher = start.copy()
            hasher.update(name.encode())
            random = cls.__new__(cls)
            random._state = int.from_bytes(hasher.digest(), "little")
            return random

        return stream

    def spawn(self, name: str) -> TaskRandom:
        """A second stream, seeded by this one's current state and ``name``; draws none from it.

        Rules draw the wording of their answers from such a stream where the main one goes on to
        choose objects, kinds or pairs: a phrasing added to a pool then changes which answer
        wording is drawn, never which questions are asked.
        """
        hasher = blake2b(self._state.to_bytes(8, "little"), digest_size=8)
        hasher.update(name.encode())
        random = TaskRandom.__new__(TaskRandom)
        random._state = int.from_bytes(hasher.digest(), "little")
        return random

    def next64(self) -> int:
        """The next 64-bit draw."""
        self._state = state = (self._state + _GOLDEN) & _MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def draws(self, count: int) -> list[int]:
        """The next ``count`` 64-bit draws: ``[self.next64() for _ in range(count)]``, faster.

        The draws of a shuffle or sample are mixed in one loop, without a method call each.
        """
        state = self._state
        mixed = []
        for _ in range(count):
            state = z = (state + _GOLDEN) & _MASK
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
            mixed.append(z ^ (z >> 31))
        self._state = state
        return mixed

    def random(self) -> float:
        """A float in [0, 1)."""
        return (self.next64() >> 11) * (1.0 / (1 << 53))

    def randint(self, low: int, high: int) -> int:
        """An integer in [low, high], both included."""
        return low + self.next64() % (high - low + 1)

    def choice(self, options: Sequence[T]) -> T:
        if not options:
            raise IndexError("cannot choose from an empty sequence")
        # next64() written out: a record draws some fifty phrasings, and the call costs a fifth
        self._state = state = (self._state + _GOLDEN) & _MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return options[(z ^ (z >> 31)) % len(options)]

    def shuffle(self, items: MutableSequence) -> None:
        """Fisher-Yates, in place."""
        n = len(items)
        for i, draw in zip(range(n - 1, 0, -1), self.draws(max(n - 1, 0)), strict=True):
            j = draw % (i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, population: Sequence[T], k: int) -> list[T]:
        """k distinct items in random order (a partial Fisher-Yates on a copy)."""
        pool = list(population)
        if not 0 <= k <= len(pool):
            raise ValueError(f"sample of {k} from a population of {len(pool)}")
        n = len(pool)
        for i, draw in enumerate(self.draws(k)):
            j = i + draw % (n - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def pick(answers: Mapping[str, object], key: str, rng: TaskRandom) -> str:
    """One phrasing of an answer key: the pool's string, or one of its list drawn with the rng."""
    value = answers[key]
    return value if isinstance(value, str) else rng.choice(value)

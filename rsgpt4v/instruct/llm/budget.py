"""The spending cap of an LLM run: worst-case reservations before calls, real costs after;
one cap shared by the tasks of a run fanned out over a cluster (:class:`BudgetLedger`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reservation:
    """What :meth:`Budget.reserve` holds for one request, handed back to :meth:`Budget.settle`."""

    amount: float  # USD held: the estimate times the highest billed/estimated ratio seen
    estimate: float  # the request's own worst-case estimate


class Budget:
    """A spending cap: reserve a worst-case estimate before a call, settle the real cost after.

    A request that does not fit while others are in flight waits for them to settle (their
    real cost is usually below the estimate); one that does not fit with nothing in flight
    means the cap is reached. ``earlier`` is what earlier runs of the same output spent (the
    ledger in the reply cache), so a rerun goes on from there rather than from zero.

    A server may bill above any estimate (a price table that understates a model's image tokens,
    say): the first request therefore goes alone, and every later one is reserved at the highest
    billed/estimated ratio seen so far, so concurrent requests cannot all overshoot together.
    """

    def __init__(self, limit_usd: float | None, earlier_usd: float = 0.0) -> None:
        self.limit = limit_usd
        self.earlier = earlier_usd
        self.spent = 0.0  # by this run
        self.reserved = 0.0
        self.ratio = 1.0
        self._settles = 0
        self._in_flight = 0
        self._settled = asyncio.Condition()

    async def reserve(self, estimate: float) -> Reservation | bool:
        """A reservation for a request of this worst-case estimate, or False: the cap is reached."""
        if self.limit is None:
            return True
        async with self._settled:
            while True:
                amount = estimate * self.ratio
                first_alone = self._settles == 0 and self._in_flight > 0
                fits = self.earlier + self.spent + self.reserved + amount <= self.limit
                if fits and not first_alone:
                    break
                if self._in_flight == 0:
                    return False
                await self._settled.wait()
            self.reserved += amount
            self._in_flight += 1
            return Reservation(amount, estimate)

    async def settle(self, reserved: Reservation | float | bool, actual: float) -> None:
        self.spent += actual
        if self.limit is None:
            return
        held = reserved if isinstance(reserved, Reservation) else Reservation(reserved, reserved)
        async with self._settled:
            self.reserved -= held.amount
            self._in_flight -= 1
            self._settles += 1
            if held.estimate > 0:
                self.ratio = max(self.ratio, actual / held.estimate)
            self._settled.notify_all()


class BudgetLedger:
    """One budget for every task of a fanned-out run, held by a shared object (a Ray actor).

    A reservation of a worker that died never settles; a request waits for it at most
    ``patience`` seconds (longer than any call can take) and then counts the cap as reached.
    """

    def __init__(self, limit_usd: float, patience: float) -> None:
        self.budget = Budget(limit_usd)
        self.patience = patience

    async def reserve(self, estimate: float) -> Reservation | bool:
        try:
            return await asyncio.wait_for(self.budget.reserve(estimate), self.patience)
        except TimeoutError:
            return False

    async def settle(self, reserved: Reservation | float | bool, actual: float) -> None:
        await self.budget.settle(reserved, actual)


class SharedBudget:
    """What one task's requester sees in place of its own :class:`Budget`: the run's
    :class:`BudgetLedger` (shared: ``await ledger.method(...)``), plus what this task spent."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self.spent = 0.0

    async def reserve(self, estimate: float) -> Reservation | bool:
        return await self.ledger.reserve(estimate)

    async def settle(self, reserved: Reservation | float | bool, actual: float) -> None:
        self.spent += actual
        await self.ledger.settle(reserved, actual)

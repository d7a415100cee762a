"""A company that keeps changing: bursts of creates, updates and deletes, or a steady rate.

Every change goes through Company's own write rules (SyncToken + 1, LastUpdatedTime now,
balances kept equal to open invoices, hard deletes recorded for CDC), so a sync that runs
meanwhile sees exactly what it would see against a busy QBO company. Bursts are
deterministic for a seed; the background task draws from the emulator's seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from qbo_pipeline.emulator.company import Company
from qbo_pipeline.emulator.faults import ServiceFault
from qbo_pipeline.emulator.generator import ITEMS
from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE, Entity

log = logging.getLogger(__name__)
KINDS = ("creates", "updates", "deletes", "deactivations")
TICK_SECONDS = 0.05  # the background task's granularity
_PICK_TRIES = 64


@dataclass
class Changes:
    """What a burst did, as (entity name, Id) pairs per kind of change."""

    created: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    deactivated: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, list[dict[str, str]]]:
        return {
            kind: [{"entity": entity, "id": entity_id} for entity, entity_id in pairs]
            for kind, pairs in vars(self).items()
        }


class Mutator:
    """Makes random but valid changes to one company."""

    def __init__(self, company: Company, rng: random.Random) -> None:
        self.company = company
        self.random = rng

    def burst(self, counts: dict[str, int], state: EmulatorState) -> Changes:
        """Changes all stamped with one instant, as a bulk import in QBO is: more rows in
        one second than a page or a CDC answer holds, whatever the machine's speed."""
        changes = Changes()
        with state.clock.frozen():
            for _ in range(counts.get("creates", 0)):
                self._record(changes.created, self.create(state))
            for _ in range(counts.get("updates", 0)):
                self._record(changes.updated, self.update(state))
            for _ in range(counts.get("deletes", 0)):
                self._record(changes.deleted, self.delete(state))
            for _ in range(counts.get("deactivations", 0)):
                self._record(changes.deactivated, self.deactivate(state))
        return changes

    def one(self, state: EmulatorState) -> tuple[str, str] | None:
        """A single change of a random kind, weighted towards creates and updates."""
        draw = self.random.random()
        if draw < 0.35:
            return self.create(state)
        if draw < 0.8:
            return self.update(state)
        if draw < 0.92:
            return self.delete(state)
        return self.deactivate(state)

    @staticmethod
    def _record(into: list[tuple[str, str]], change: tuple[str, str] | None) -> None:
        if change is not None:
            into.append(change)

    # Kinds of change ------------------------------------------------------------------------

    def create(self, state: EmulatorState) -> tuple[str, str] | None:
        if self.random.random() < 0.5 or not self._ids(CUSTOMER):
            return self._create_customer(state)
        customer = self._pick(CUSTOMER, lambda c: c.get("Active", True))
        if customer is None:
            return self._create_customer(state)
        lines = []
        for _ in range(self.random.randint(1, 3)):
            item_id, name, price = self.random.choice(ITEMS)
            detail = {
                "ItemRef": {"value": item_id, "name": name},
                "UnitPrice": float(price),
                "Qty": self.random.randint(1, 10),
                "TaxCodeRef": {"value": "NON"},
            }
            lines.append(
                {
                    "Description": name,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": detail,
                }
            )
        payload = {"CustomerRef": {"value": customer["Id"]}, "Line": lines}
        return self._save(INVOICE, payload, state)

    def _create_customer(self, state: EmulatorState) -> tuple[str, str] | None:
        number = self.company.tables[CUSTOMER.name].next_id
        name = f"Churn Customer {number}-{self.random.randrange(16**6):06x}"
        return self._save(CUSTOMER, {"DisplayName": name, "CompanyName": name}, state)

    def update(self, state: EmulatorState) -> tuple[str, str] | None:
        entity = CUSTOMER if self.random.random() < 0.4 else INVOICE
        current = self._pick(entity, lambda _: True) or self._pick(
            INVOICE if entity is CUSTOMER else CUSTOMER, lambda _: True
        )
        if current is None:
            return None
        note = "Notes" if "DisplayName" in current else "PrivateNote"
        change = {note: f"churn {self.random.randrange(10**9)}"}
        return self._save(_entity_of(current), {**self._version(current), **change}, state)

    def delete(self, state: EmulatorState) -> tuple[str, str] | None:
        invoice = self._pick(INVOICE, lambda _: True)
        if invoice is None:
            return None
        self.company.delete(INVOICE, self._version(invoice), state.clock.datetime())
        return INVOICE.name, invoice["Id"]

    def deactivate(self, state: EmulatorState) -> tuple[str, str] | None:
        """Make a customer inactive, preferring one with nothing owed, as QBO insists."""
        customer = self._pick(
            CUSTOMER, lambda c: c.get("Active", True) and not c.get("Balance")
        ) or self._pick(CUSTOMER, lambda c: c.get("Active", True))
        if customer is None:
            return None
        return self._save(CUSTOMER, {**self._version(customer), "Active": False}, state)

    # Helpers -------------------------------------------------------------------------------

    def _save(
        self, entity: Entity, payload: dict[str, Any], state: EmulatorState
    ) -> tuple[str, str] | None:
        try:
            saved = self.company.save(entity, payload, state.clock.datetime())
        except ServiceFault as fault:  # e.g. a name taken since it was drawn
            log.debug("churn change refused: %s", fault)
            return None
        return entity.name, saved["Id"]

    @staticmethod
    def _version(body: dict[str, Any]) -> dict[str, Any]:
        return {"Id": body["Id"], "SyncToken": body["SyncToken"], "sparse": True}

    def _ids(self, entity: Entity) -> bool:
        return bool(self.company.tables[entity.name].rows)

    def _pick(self, entity: Entity, wanted) -> dict[str, Any] | None:
        """A random existing entity that `wanted` accepts, by probing Ids (no full scan)."""
        table = self.company.tables[entity.name]
        if not table.rows:
            return None
        for entity_id in self._probes(table.next_id):
            body = table.get(entity_id)
            if body is not None and wanted(body):
                return body
        return None

    def _probes(self, next_id: int) -> Iterator[int]:
        for _ in range(_PICK_TRIES):
            yield self.random.randrange(1, next_id)


def _entity_of(body: dict[str, Any]) -> Entity:
    return CUSTOMER if "DisplayName" in body else INVOICE


# The background task ---------------------------------------------------------------------


def start(state: EmulatorState, rate: float) -> None:
    """Churn every company at `rate` changes per second until stopped; replaces a running one."""
    if state.churn_task is not None:
        state.churn_task.cancel()
    state.churn_rate = rate
    state.churn_task = asyncio.get_running_loop().create_task(_run(state))


async def stop(state: EmulatorState) -> None:
    task, state.churn_task, state.churn_rate = state.churn_task, None, 0.0
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _run(state: EmulatorState) -> None:
    seed = state.config.seed if state.config.fault_seed is None else state.config.fault_seed
    mutators: dict[str, Mutator] = {}
    owed = 0.0
    last = time.monotonic()
    while True:
        await asyncio.sleep(max(TICK_SECONDS, 1 / state.churn_rate if state.churn_rate else 1))
        now = time.monotonic()
        owed += (now - last) * state.churn_rate
        last = now
        for realm_id, company in state.companies.items():  # one added meanwhile joins in
            if realm_id not in mutators:
                mutators[realm_id] = Mutator(company, random.Random(seed + 17))
        while owed >= 1:
            owed -= 1
            for mutator in mutators.values():
                change = mutator.one(state)
                if change is not None:
                    state.stats.churn_changes += 1

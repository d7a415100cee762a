"""An incremental read through Change Data Capture: the changed rows and the deletions of
a window in one call per 1000 changes.

CDC answers with the full payloads of what changed since an instant (deletions as stubs),
oldest first, at most 1000 objects a call, for 30 days back. So an incremental sync of an
entity where little changed costs one call (shared by the run's entities, below), where a
query of the window would cost a probe, pages and a CDC call for the deletions on top. A
full answer is continued from its newest stamp. When more than 1000 objects share one
second (a bulk change), CDC cannot be continued; the rest of the window is read by query,
and the deletions are known only in part, which the engine settles by counting.

A run of several entities asks CDC once for all of them (`SharedChanges`), from the
earliest of their cursors: a run of thirty entities where little changed then costs one
call, not thirty. Only an answer under the 1000 objects is shared, since a full one may
stop part-way through any entity's changes: the entities it holds then ask on their own,
and those it holds nothing of ask together again, so a bulk change in a few tables costs
a shared call more for each of them, not a call for every entity.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Entity, Kind
from qbo_pipeline.quickbooks.client import ChangeSet, QuickBooksClient
from qbo_pipeline.quickbooks.faults import ValidationFault
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.batches import BatchWriter
from qbo_pipeline.sync.deletes import Deletion
from qbo_pipeline.sync.reading import Reader, bound_of

log = logging.getLogger(__name__)

CDC_REACH = timedelta(days=30)
# Stay clear of the edge: QBO's clock and ours differ, and a run takes time.
CDC_MARGIN = timedelta(hours=12)
CDC_MAX_OBJECTS = 1000
# Shared calls a run makes at most: each full answer that follows costs a call and drops
# only the entities it holds, so past a few, each entity asking alone is cheaper.
MAX_SHARED_CALLS = 3


def cdc_reaches(since: datetime, now: datetime) -> bool:
    return now - since < CDC_REACH - CDC_MARGIN


@dataclass(frozen=True)
class Changes:
    """What an incremental read found besides the rows it wrote."""

    upper: datetime  # the run's bound: QBO's clock at the first answer, to the next second
    deletions: list[Deletion]
    complete: bool  # False when a bulk change hid deletions from CDC


def is_beyond_reach(fault: ValidationFault) -> bool:
    """QBO's clock puts changedSince more than 30 days back (ours said it was not: the
    clocks differ by more than CDC_MARGIN)."""
    return any(detail.element == "changedSince" for detail in fault.errors)


class SharedChanges:
    """One CDC call for several entities, asked from the earliest of their `since`s, and
    its answer for the entities it stands for (`covered`: under the 1000 objects, within
    QBO's reach); `calls` it took."""

    def __init__(
        self, answer: ChangeSet | None, covered: AbstractSet[str] = frozenset(), calls: int = 1
    ) -> None:
        self._answer = answer
        self._covered = covered
        self._calls = calls
        self._lock = threading.Lock()

    def of(self, entity: Entity, since: datetime) -> ChangeSet | None:
        """The entity's part of the answer, from its own `since` on; None: ask CDC."""
        if self._answer is None or entity.name not in self._covered:
            return None
        rows = [
            row
            for row in self._answer.changed.get(entity.name, [])
            if parse_instant(row["MetaData"]["LastUpdatedTime"]) >= since
        ]
        return ChangeSet(changed={entity.name: rows}, server_time=self._answer.server_time)

    def claim(self) -> int:
        """The calls, counted once: by the first entity that reads the answer."""
        with self._lock:
            calls, self._calls = self._calls, 0
            return calls


def share_changes(
    client: QuickBooksClient, entities: Sequence[tuple[Entity, datetime]]
) -> SharedChanges | None:
    """One CDC call for `entities` (each with its `since`); None for fewer than two.

    An answer of 1000 objects may stop part-way through any entity's changes. The
    entities it holds ask on their own; those it holds nothing of ask together again,
    until an answer is whole, one entity is left or MAX_SHARED_CALLS were made, so a bulk
    change in one or two tables costs the others a shared call more, not a call each."""
    if len(entities) < 2:
        return None
    calls, asking = 0, list(entities)
    while len(asking) >= 2 and calls < MAX_SHARED_CALLS:
        answer, calls = _shared_answer(client, asking), calls + 1
        if answer is None:
            return SharedChanges(None, calls=calls)
        if _objects(answer) < CDC_MAX_OBJECTS:
            return SharedChanges(answer, {entity.name for entity, _ in asking}, calls=calls)
        rest = [(entity, since) for entity, since in asking if not answer.changed.get(entity.name)]
        log.info(
            "realm %s: over %d changes since %s; %d of %d entities ask CDC together again",
            client.realm_id,
            CDC_MAX_OBJECTS,
            min(since for _, since in asking).isoformat(),
            len(rest),
            len(asking),
        )
        asking = rest
    return SharedChanges(None, calls=calls)


def _shared_answer(
    client: QuickBooksClient, entities: Sequence[tuple[Entity, datetime]]
) -> ChangeSet | None:
    """CDC's answer for the entities from the earliest `since`; None beyond its reach."""
    since = min(since for _, since in entities)
    try:
        return client.cdc([entity for entity, _ in entities], since)
    except ValidationFault as fault:
        if not is_beyond_reach(fault):
            raise
        return None


def _objects(answer: ChangeSet) -> int:
    return sum(len(rows) for rows in answer.changed.values())


def read_changes(
    reader: Reader, writer: BatchWriter, since: datetime, shared: SharedChanges | None = None
) -> Changes:
    """Write every row changed since `since` and collect the deletions; the first answer
    is the run's shared one when there is one."""
    client, entity = reader.client, reader.entity
    deletions: list[Deletion] = []
    position, upper = since, None
    while True:
        answer = None
        if shared is not None:
            reader.counted(shared.claim())
            answer, shared = shared.of(entity, since), None
        if answer is None:
            reader.counted()
            answer = client.cdc([entity], position)
        upper = upper or bound_of(answer.server_time)
        objects = answer.changed.get(entity.name, [])
        if entity.kind is Kind.TRANSACTION:  # name-lists are inactivated, never deleted
            deletions.extend(answer.deleted(entity))
        live = [row for row in objects if row.get("status") != "Deleted"]
        if live:
            writer.add(reader.typer.records(entity, live))
        if len(objects) < CDC_MAX_OBJECTS:
            writer.flush()
            return Changes(upper, deletions, complete=True)
        stamps = [parse_instant(row["MetaData"]["LastUpdatedTime"]) for row in objects]
        last = max(stamps)
        del objects, live
        # Asked again from `last`, CDC would answer the same objects when they all share
        # that one second (or no later one): a bulk change it cannot page through.
        if last <= position or min(stamps) >= last.replace(microsecond=0):
            log.info(
                "realm %s %s: over %d changes within one second; reading the rest by query",
                client.realm_id,
                entity.name,
                CDC_MAX_OBJECTS,
            )
            for page in reader.window(position, upper):
                writer.add(page)
            writer.flush()
            return Changes(upper, deletions, complete=False)
        position = last

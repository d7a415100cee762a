"""Applying webhook events: the few entities they name are read by Id, not scanned for.

A webhook run reads exactly the Ids its events name (200 to a query), so a change costs
one API call instead of an incremental scan of every range. The cursor does not move: the
rows read are newer than it, and the next incremental run reads them again harmlessly
(the upsert keeps the highest SyncToken).

What each event means for its row, taking an Id's latest event:
- created, updated, emailed, or a verb Intuit adds later: read it again;
- deleted: read it again (a name-list row comes back inactive; a transaction does not
  come back, and is marked deleted);
- voided: read it again (the voided version, amounts at zero) and mark it deleted;
- merged: read the survivor, and read and mark deleted the Id it absorbed.

`deleted_reason` says which ("deleted", "voided", "merged"): QBO keeps voided
transactions and counts them, so counts compare them as present.

A row is read before it is marked, so the stored version is QBO's last and a later sync
re-reading the same version keeps the mark.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from qbo_pipeline.quickbooks.catalog import Entity, Kind
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.webhooks import WebhookEvent
from qbo_pipeline.sync.batches import BatchWriter
from qbo_pipeline.sync.deletes import Deletion, write_by_ids
from qbo_pipeline.sync.engine import EntitySyncResult
from qbo_pipeline.warehouse import Warehouse

# Above this many Ids an incremental sync is cheaper than reading them 200 to a query.
BY_ID_LIMIT = 1000


@dataclass(frozen=True)
class ChangePlan:
    read: list[str]  # Ids to read again
    voided: dict[str, datetime]  # Ids to mark deleted as voided, and since when
    merged: dict[str, datetime]  # Ids merged into another
    removed_if_absent: dict[str, datetime]  # marked deleted only if QBO no longer has them


def plan_changes(entity: Entity, events: Iterable[WebhookEvent]) -> ChangePlan:
    """What the events of one entity ask for; see the module docstring."""
    now = datetime.now(UTC)
    latest: dict[str, WebhookEvent] = {}
    merged_away: dict[str, datetime] = {}
    for event in sorted(events, key=lambda e: e.occurred_at or now):  # stable: receipt order
        latest[event.entity_id] = event
        if event.operation == "merged" and event.deleted_id:
            merged_away[event.deleted_id] = event.occurred_at or now
    voided: dict[str, datetime] = {}
    absent: dict[str, datetime] = {}
    for entity_id, event in latest.items():
        if entity_id in merged_away:
            continue
        if event.operation == "voided":
            voided[entity_id] = event.occurred_at or now
        elif entity.kind is Kind.TRANSACTION:
            absent[entity_id] = event.occurred_at or now
    read = [*latest, *merged_away.keys() - latest.keys()]  # read_by_ids sorts them
    return ChangePlan(read=read, voided=voided, merged=merged_away, removed_if_absent=absent)


def apply_changes(
    client: QuickBooksClient,
    warehouse: Warehouse,
    entity: Entity,
    events: Sequence[WebhookEvent],
    *,
    batch_rows: int = 5000,
) -> EntitySyncResult:
    """Read the Ids the events name, write them, and mark what they deleted."""
    started = time.monotonic()
    plan = plan_changes(entity, events)
    with BatchWriter(warehouse, entity, client.realm_id, batch_rows, None) as writer:
        found, requests = write_by_ids(client, entity, plan.read, writer)
    gone: list[Deletion] = [(i, at) for i, at in plan.removed_if_absent.items() if i not in found]
    deleted = 0
    for reason, deletions in (
        ("deleted", gone),
        ("voided", [*plan.voided.items()]),
        ("merged", [*plan.merged.items()]),
    ):
        if deletions:
            deleted += warehouse.apply_deletions(entity, client.realm_id, deletions, reason=reason)
    return EntitySyncResult(
        entity=entity.name,
        realm_id=client.realm_id,
        mode="webhook",
        rows=writer.rows,
        lines=writer.lines,
        deleted=deleted,
        requests=requests,
        fetched=writer.fetched,
        seconds=time.monotonic() - started,
        cursor=None,
    )


def distinct_ids(events: Iterable[WebhookEvent]) -> int:
    """How many Ids a set of events would have read: decides by-Id or incremental."""
    ids = set()
    for event in events:
        ids.add(event.entity_id)
        if event.deleted_id:
            ids.add(event.deleted_id)
    return len(ids)

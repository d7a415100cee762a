"""An incremental read through Change Data Capture: the changed rows and the deletions of
a window in one call per 1000 changes.

CDC answers with the full payloads of what changed since an instant (deletions as stubs),
oldest first, at most 1000 objects a call, for 30 days back. So an incremental sync of a
company where little changed costs one call per entity, where a query of the window would
cost a probe, pages and a CDC call for the deletions on top. A full answer is continued
from its newest stamp. When more than 1000 objects share one second (a bulk change), CDC
cannot be continued; the rest of the window is read by query, and the deletions are
known only in part, which the engine settles by counting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Kind
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.batches import BatchWriter
from qbo_pipeline.sync.deletes import Deletion
from qbo_pipeline.sync.reading import Reader, bound_of

log = logging.getLogger(__name__)

CDC_REACH = timedelta(days=30)
# Stay clear of the edge: QBO's clock and ours differ, and a run takes time.
CDC_MARGIN = timedelta(hours=12)
CDC_MAX_OBJECTS = 1000


def cdc_reaches(since: datetime, now: datetime) -> bool:
    return now - since < CDC_REACH - CDC_MARGIN


@dataclass(frozen=True)
class Changes:
    """What an incremental read found besides the rows it wrote."""

    upper: datetime  # the run's bound: QBO's clock at the first answer, to the next second
    deletions: list[Deletion]
    complete: bool  # False when a bulk change hid deletions from CDC


def read_changes(reader: Reader, writer: BatchWriter, since: datetime) -> Changes:
    """Write every row changed since `since` and collect the deletions."""
    client, entity = reader.client, reader.entity
    deletions: list[Deletion] = []
    position, upper = since, None
    while True:
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

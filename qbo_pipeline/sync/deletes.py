"""Finding what QBO deleted: CDC for recent changes, reconciliation when CDC cannot reach.

Transactions are hard-deleted in QBO and vanish from queries; only CDC reports them, for
30 days back, 1000 objects per answer (oldest first). When the last sync is older than
that, or CDC has more than it can page through, the engine reads the entity in full and
reconciles: a stored row that was not read is deleted, unless QBO still returns it by Id
(it was changed during the read and moved past the run's bound). When CDC could not page
through a bulk change, counting first often spares that full read: if QBO holds as many
rows as the warehouse has live ones, nothing else was deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.query import select_by_ids
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.sync.batches import BatchWriter
from qbo_pipeline.sync.reading import Page

log = logging.getLogger(__name__)

CDC_REACH = timedelta(days=30)
# Stay clear of the edge: QBO's clock and ours differ, and a run takes time.
CDC_MARGIN = timedelta(hours=12)
CDC_MAX_OBJECTS = 1000
IDS_PER_QUERY = 200  # Id IN (...) lists; long statements go in a POST body

Deletion = tuple[str, datetime]


def cdc_reaches(since: datetime, now: datetime) -> bool:
    return now - since < CDC_REACH - CDC_MARGIN


def deletions_from_cdc(
    client: QuickBooksClient, entity: Entity, since: datetime
) -> tuple[list[Deletion], bool]:
    """Deleted (Id, instant) since `since`, and whether CDC reported all of them.

    A full answer (1000 objects) is continued from its last LastUpdatedTime; a full answer
    within one second (a bulk change) cannot be continued, and only part is known.
    """
    deletions: list[Deletion] = []
    position = since
    while True:
        answer = client.cdc([entity], position)
        deletions.extend(answer.deleted(entity))
        objects = answer.changed.get(entity.name, [])
        if len(objects) < CDC_MAX_OBJECTS:
            return deletions, True
        last = max(parse_instant(o["MetaData"]["LastUpdatedTime"]) for o in objects)
        if last <= position:
            log.info(
                "realm %s %s: over %d changes within one second; CDC cannot page further",
                client.realm_id,
                entity.name,
                CDC_MAX_OBJECTS,
            )
            return deletions, False
        position = last


def read_by_ids(
    client: QuickBooksClient, entity: Entity, ids: Iterable[str]
) -> Iterator[list[dict]]:
    """Pages of the entities QBO still has among `ids` (the rest are deleted), 200 a query.

    QBO's Ids are decimal numbers; an id that is not was not written by a sync (the
    warehouse is editable), cannot be in QBO, and asking about it would make the whole
    query invalid (4001), so it is not asked about.
    """
    ids = sorted({entity_id for entity_id in ids if entity_id.isdecimal()}, key=int)
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield client.query(select_by_ids(entity, ids[start : start + IDS_PER_QUERY])).entities


def write_by_ids(
    client: QuickBooksClient, entity: Entity, ids: Iterable[str], writer: BatchWriter
) -> tuple[set[str], int]:
    """Read `ids` (see read_by_ids), write what QBO still has, and flush; returns the Ids
    QBO returned and how many queries it took."""
    found: set[str] = set()
    queries = 0
    for rows in read_by_ids(client, entity, ids):
        queries += 1
        page = Page.of(entity, rows)
        writer.add(page)
        found.update(page.ids)
    writer.flush()
    return found, queries

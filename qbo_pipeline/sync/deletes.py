"""Reading rows by Id: what tells a deleted row from one that moved.

Transactions are hard-deleted in QBO and vanish from queries; only CDC reports them
(`cdc`), for 30 days back. When the last sync is older than that, or CDC could not page
through a bulk change and the counts differ, the engine reads the entity in full and
reconciles: a stored row that was not read is deleted, unless QBO still returns it by Id
(it was changed during the read and moved past the run's bound). Webhook runs read the
Ids their events name the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.query import select_by_ids
from qbo_pipeline.sync.batches import BatchWriter
from qbo_pipeline.warehouse.records import record_typer

log = logging.getLogger(__name__)

IDS_PER_QUERY = 200  # Id IN (...) lists; long statements go in a POST body

Deletion = tuple[str, datetime]


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
        page = record_typer().records(entity, rows)
        writer.add(page)
        found.update(page.ids)
    writer.flush()
    return found, queries

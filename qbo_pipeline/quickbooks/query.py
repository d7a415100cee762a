"""Builders of QBO query statements: pure functions over the catalog.

QBO's grammar has no OR, no projections and a 1000-row page limit; name-list entities
hide inactive rows unless the query mentions `Active`, which a sync must never miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.quickbooks.timestamps import format_qbo

MAX_RESULTS = 1000


def string_literal(value: str) -> str:
    """Any text as a quoted literal: QBO escapes a quote, and so a backslash, with a
    backslash. Ids come from the warehouse, which anyone with write access can edit."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def select_by_ids(entity: Entity, ids: Sequence[str]) -> str:
    """The entities among `ids` (at most MAX_RESULTS of them) that QBO still has, inactive
    name-list rows included (QBO leaves those out unless asked)."""
    if not 1 <= len(ids) <= MAX_RESULTS:
        raise ValueError(f"between 1 and {MAX_RESULTS} ids at a time; got {len(ids)}")
    listed = ", ".join(string_literal(entity_id) for entity_id in ids)
    where = f"Id IN ({listed})"
    if entity.hides_inactive:
        where = f"Active IN (true, false) AND {where}"
    return f"SELECT * FROM {entity.name} WHERE {where} MAXRESULTS {len(ids)}"


def timestamp_literal(instant: datetime) -> str:
    """A quoted literal QBO compares as an instant (offset included, as QBO_API.md asks)."""
    return f"'{format_qbo(instant)}'"


def sync_filter(
    entity: Entity,
    since: datetime | None,
    until: datetime | None = None,
    *,
    at: datetime | None = None,
) -> str:
    """The WHERE clause of a sync: every row, inactive name-list rows included.

    `since` is inclusive and `until` exclusive; `at` selects one exact timestamp.
    """
    conditions = []
    if entity.hides_inactive:
        conditions.append("Active IN (true, false)")
    if at is not None:
        conditions.append(f"MetaData.LastUpdatedTime = {timestamp_literal(at)}")
    if since is not None:
        conditions.append(f"MetaData.LastUpdatedTime >= {timestamp_literal(since)}")
    if until is not None:
        conditions.append(f"MetaData.LastUpdatedTime < {timestamp_literal(until)}")
    return " AND ".join(conditions)


def created_before(entity: Entity, bound: datetime) -> str:
    """QBO's rows created before `bound`, inactive name-list rows included: what a count
    compares, since a row changed after the bound is still counted (by a filter on
    LastUpdatedTime it would not be, while the warehouse holds its older version)."""
    created = f"MetaData.CreateTime < {timestamp_literal(bound)}"
    return " AND ".join(part for part in (sync_filter(entity, None), created) if part)


def select_page(
    entity: Entity,
    where: str,
    *,
    start_position: int,
    max_results: int = MAX_RESULTS,
    order_by: str = "MetaData.LastUpdatedTime",
) -> str:
    if not 1 <= max_results <= MAX_RESULTS:
        raise ValueError(f"max_results must be between 1 and {MAX_RESULTS}; got {max_results}")
    if start_position < 1:
        raise ValueError(f"start_position is 1-based; got {start_position}")
    statement = f"SELECT * FROM {entity.name}"
    if where:
        statement += f" WHERE {where}"
    return f"{statement} ORDERBY {order_by} STARTPOSITION {start_position} MAXRESULTS {max_results}"

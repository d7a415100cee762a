"""The names of the asset checks, and which of them a run selects.

Kept apart from the checks themselves so that the schedules and the webhook sensor, which
the checks import, can select them. A check that counts rows in QBO costs an API call per
table, and every call counts against the customer's monthly Intuit allowance: only the
daily reconciliation and runs started by hand pay for it.
"""

import dagster as dg

from qbo_pipeline.defs.assets import entity_keys, table_key
from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity

LIVE_ROWS_CHECK = "live_rows_match_qbo"
ORPHAN_LINES_CHECK = "lines_have_their_parent"
FRESHNESS_CHECK = "realms_synced_recently"


def without_api_calls(entity: Entity) -> list[dg.AssetCheckKey]:
    """The per-realm checks of an entity's tables that call no API: what a webhook run,
    which reads a few Ids, can afford."""
    if entity.lines is None:
        return []
    return [dg.AssetCheckKey(table_key(entity.lines.table), ORPHAN_LINES_CHECK)]


def hourly_checks(entity: Entity) -> list[dg.AssetCheckKey]:
    """What an incremental run checks: everything but the COUNT against QBO."""
    freshness = [dg.AssetCheckKey(key, FRESHNESS_CHECK) for key in entity_keys(entity)]
    return without_api_calls(entity) + freshness


# What an hourly run selects, whether the schedule or `qbo-pipeline sync` starts it.
ALL_TABLES = [key for entity in ENTITIES for key in entity_keys(entity)]
HOURLY_CHECKS = [check for entity in ENTITIES for check in hourly_checks(entity)]

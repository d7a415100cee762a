"""Asset checks on the QuickBooks tables: what a sync leaves must agree with QuickBooks.

- `live_rows_match_qbo` (each entity table, per realm partition): the warehouse holds as
  many rows as QBO counts. Costs one API call (a COUNT query) per entity per run, so
  only the daily reconciliation and runs started by hand make it (`check_keys`).
- `lines_have_their_parent` (each line table, per realm partition): no line without its
  invoice; SQL in the warehouse, no API call.
- `realms_synced_recently` (every table, across realms): each connected realm has been
  materialised within its schedule (QBO_SYNC_CRON). Dagster's freshness mechanisms judge
  an asset by its latest materialisation of any partition, so one realm that stopped
  syncing hides behind the others; this check looks at each realm's partition, and
  records its results the way Dagster's freshness checks do, so Dagster's
  `build_sensor_for_freshness_checks` evaluates it between runs.

A failed check does not fail its run (the data is committed); its one-line description
says what differs and what to do. A check that cannot be evaluated (QBO unreachable, the
vault unreadable) fails with severity WARN and the reason.
"""

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from qbo_pipeline.defs.assets import SYNC_OP, table_key
from qbo_pipeline.defs.check_keys import (
    FRESHNESS_CHECK,
    LIVE_ROWS_CHECK,
    ORPHAN_LINES_CHECK,
    entity_keys,
)
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import QuickBooksResource, WarehouseResource
from qbo_pipeline.defs.schedules import (
    OVERDUE_GRACE,
    SYNC_CRON,
    SYNC_CRON_VARIABLE,
    overdue_at,
)
from qbo_pipeline.errors import PipelineError
from qbo_pipeline.quickbooks.catalog import ENTITIES, Entity, LineTable
from qbo_pipeline.quickbooks.query import created_before
from qbo_pipeline.sync.engine import UNTRACKED_EVERY
from qbo_pipeline.vault.store import Connection, ConnectionStatus
from qbo_pipeline.warehouse import schema
from qbo_pipeline.warehouse.base import Warehouse
from qbo_pipeline.warehouse.sql import quote

EXAMPLES = 5  # ids named in a failing check's metadata and description
# Read by build_sensor_for_freshness_checks: when a passing check could next fail.
FRESH_UNTIL = "dagster/fresh_until_timestamp"


def _per_realm_spec(name: str, key: dg.AssetKey, description: str) -> dg.AssetCheckSpec:
    """A check evaluated per realm partition, as its asset is materialised.

    Partitioned checks are a preview in Dagster 1.13 (it warns on each definition); the
    installed version records each evaluation against the run's partition, which is what
    these checks rely on, so the warning is silenced here only.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=key, description=description, partitions_def=realm_partitions
        )


def _result(
    key: dg.AssetKey, passed: bool, description: str, **metadata: object
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key, passed=passed, description=description, metadata=metadata
    )


def _not_evaluated(
    what: str, error: PipelineError, asset_key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
    """A check that could not look: failed, as a warning, with the reason."""
    return dg.AssetCheckResult(
        asset_key=asset_key,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{what}: not checked, {error}",
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- live rows against QBO's count ---------------------------------------------------------


def _counts_result(
    entity: Entity, realm: str, bound: datetime, stored: int, in_qbo: int
) -> dg.AssetCheckResult:
    what = "rows (inactive included)" if entity.is_name_list else "live rows"
    head = f"qbo.{entity.table} for realm {realm}: {stored:,} {what}"
    before = f"created before {_instant(bound)}"
    if stored == in_qbo:
        description = f"{head} {before}, as QBO counts"
    else:
        description = f"{head}, QBO counts {in_qbo:,} {before}; run a full refresh of the realm"
    return _result(
        table_key(entity.table),
        stored == in_qbo,
        description,
        realm_id=realm,
        warehouse_rows=stored,
        qbo_count=in_qbo,
        difference=stored - in_qbo,
        bound=dg.MetadataValue.timestamp(bound),
    )


def _compare_counts(
    entity: Entity, realm: str, quickbooks: QuickBooksResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    """Counts by creation time, not by last update: a row changed after the bound (while
    the run read, say) leaves QBO's count of rows stamped before it, but not this one, so
    only what the sync really missed (deletions, lost rows) makes the two differ."""
    try:
        with warehouse.open() as store:
            bound = store.cursor(realm, entity.name)
            if bound is None:
                return dg.AssetCheckResult(
                    asset_key=table_key(entity.table),
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"qbo.{entity.table} for realm {realm}: never synced (no "
                    "cursor), nothing to compare; run qbo_sync for the realm",
                )
            stored = store.rows_in_qbo(entity, realm, bound)
        with quickbooks.client(realm) as client:
            in_qbo = client.count(entity, created_before(entity, bound))
    except PipelineError as error:
        return _not_evaluated(
            f"qbo.{entity.table} for realm {realm}", error, table_key(entity.table)
        )
    return _counts_result(entity, realm, bound, stored, in_qbo)


def _applies_webhook_events(context: dg.AssetCheckExecutionContext) -> bool:
    """Whether the run applied webhook events (SyncConfig's webhook_events_through): such
    runs are kept to the API calls their events need."""
    ops: Mapping = context.run.run_config.get("ops", {})
    config: Mapping = ops.get(SYNC_OP, {}).get("config", {})
    return config.get("webhook_events_through") is not None


def build_live_rows_check(name: str, entities: list[Entity]) -> dg.AssetChecksDefinition:
    """The entities' counts, as one step (a step per table cost each run ~70 ms of
    event-log writes per table); a run evaluates the checks it selects. A step is skipped
    when any table it checks was not materialised, so the tables read only once a day
    (their assets skippable) are checked by a step of their own (see by_schedule)."""
    by_key = {table_key(entity.table): entity for entity in entities}
    specs = [
        _per_realm_spec(
            LIVE_ROWS_CHECK,
            key,
            f"The realm's qbo.{entity.table} rows created before the sync's bound (its "
            "cursor) number what QBO counts; one COUNT query (an API call) per run.",
        )
        for key, entity in by_key.items()
    ]

    @dg.multi_asset_check(name=name, specs=specs, can_subset=True)
    def _check(
        context: dg.AssetCheckExecutionContext,
        quickbooks: QuickBooksResource,
        warehouse: WarehouseResource,
    ) -> Iterator[dg.AssetCheckResult]:
        # Not yielding leaves a check skipped for this run, which is what it is: a
        # launcher that ignored qbo_webhook_sensor's check selection gets no API call.
        if _applies_webhook_events(context):
            context.log.info(f"{LIVE_ROWS_CHECK} left to scheduled runs")
            return
        for check_key in sorted(context.selected_asset_check_keys, key=str):
            entity = by_key[check_key.asset_key]
            yield _compare_counts(entity, context.partition_key, quickbooks, warehouse)

    return _check


# --- lines without their parent ------------------------------------------------------------


def _line_table(entity: Entity) -> schema.Table:
    table = schema.line_table(entity)
    if table is None:
        raise ValueError(f"{entity.name} has no line table to check")
    return table


def _orphans(
    store: Warehouse, entity: Entity, lines: LineTable, realm: str
) -> tuple[int, list[str]]:
    """How many of the realm's lines have no parent row, and a few of the parents' ids."""
    parent_key = quote(lines.parent_key)
    orphaned = (
        f"FROM {_line_table(entity).qualified} AS l WHERE l.realm_id = $1 AND NOT EXISTS "
        f"(SELECT 1 FROM {schema.entity_table(entity).qualified} AS p "
        f"WHERE p.realm_id = l.realm_id AND p.id = l.{parent_key})"
    )
    [(count,)] = store.query(f"SELECT count(*) {orphaned}", [realm])
    if not count:
        return 0, []
    rows = store.query(
        f"SELECT DISTINCT l.{parent_key} {orphaned} ORDER BY 1 LIMIT {EXAMPLES}", [realm]
    )
    return int(count), [str(row[0]) for row in rows]


def _orphans_result(
    entity: Entity, lines: LineTable, realm: str, store: Warehouse
) -> dg.AssetCheckResult:
    table, parents = f"qbo.{lines.table}", f"qbo.{entity.table}"
    orphans, examples = _orphans(store, entity, lines, realm)
    if not orphans:
        total = store.count(lines.table, realm)
        return _result(
            table_key(lines.table),
            True,
            f"{table} for realm {realm}: each of the {total:,} lines has its row in {parents}",
            realm_id=realm,
            orphan_lines=0,
        )
    named = ", ".join(examples)
    return _result(
        table_key(lines.table),
        False,
        f"{table} for realm {realm}: {orphans:,} lines name an {entity.name} missing from "
        f"{parents} (e.g. {named}); run a full refresh of the realm",
        realm_id=realm,
        orphan_lines=orphans,
        example_parent_ids=examples,
    )


def build_orphan_lines_check(name: str, entities: list[Entity]) -> dg.AssetChecksDefinition:
    """The entities' line tables' checks, as one step, in one warehouse session."""
    by_key = {
        table_key(entity.lines.table): (entity, entity.lines)
        for entity in entities
        if entity.lines is not None
    }
    specs = [
        _per_realm_spec(
            ORPHAN_LINES_CHECK,
            key,
            f"Every row of the realm's qbo.{lines.table} has its row in qbo.{entity.table}; "
            "SQL in the warehouse, no API call.",
        )
        for key, (entity, lines) in by_key.items()
    ]

    @dg.multi_asset_check(name=name, specs=specs, can_subset=True)
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        realm = context.partition_key
        selected = [
            by_key[key.asset_key] for key in sorted(context.selected_asset_check_keys, key=str)
        ]
        try:
            with warehouse.open() as store:
                results = [
                    _orphans_result(entity, lines, realm, store) for entity, lines in selected
                ]
        except PipelineError as error:
            results = [
                _not_evaluated(
                    f"qbo.{lines.table} for realm {realm}", error, table_key(lines.table)
                )
                for _, lines in selected
            ]
        yield from results

    return _check


# --- each realm synced on schedule ---------------------------------------------------------


@dataclass(frozen=True)
class RealmFreshness:
    realm: str
    last_update: datetime | None  # its latest materialisation of the asset
    overdue_at: datetime

    def summary(self, now: datetime) -> str:
        if self.last_update is None:
            return f"realm {self.realm} never synced"
        return f"realm {self.realm} last synced {_duration(now - self.last_update)} ago"


def _duration(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def _realm_freshness(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    connection: Connection,
    cron: str,
    every: timedelta,
) -> RealmFreshness:
    """A realm never materialised is judged from when it was connected; a table read only
    `every` so often (engine.UNTRACKED_EVERY) is due that much later."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[connection.realm_id]), limit=1
    ).records
    last = datetime.fromtimestamp(records[0].timestamp, UTC) if records else None
    due = last + every if last else connection.created_at
    return RealmFreshness(connection.realm_id, last, overdue_at(cron, due))


def _freshness_result(
    key: dg.AssetKey, realms: list[RealmFreshness], cron: str, now: datetime
) -> dg.AssetCheckResult:
    table = f"qbo.{key.path[-1]}"
    schedule = f"{SYNC_CRON_VARIABLE} {cron!r}"
    overdue = [realm for realm in realms if realm.overdue_at <= now]
    if overdue:
        listed = ", ".join(realm.summary(now) for realm in overdue[:EXAMPLES])
        more = f" and {len(overdue) - EXAMPLES} more" if len(overdue) > EXAMPLES else ""
        return dg.AssetCheckResult(
            asset_key=key,
            passed=False,
            description=f"{table}: {listed}{more}, past two runs of {schedule}; "
            "see those realms' qbo_sync runs",
            metadata={"overdue_realms": [realm.realm for realm in overdue], "cron": cron},
        )
    fresh_until = min((realm.overdue_at for realm in realms), default=overdue_at(cron, now))
    return dg.AssetCheckResult(
        asset_key=key,
        passed=True,
        description=f"{table}: every connected realm ({len(realms)}) synced within two runs "
        f"of {schedule}",
        metadata={
            FRESH_UNTIL: dg.MetadataValue.timestamp(fresh_until),
            "realms_checked": len(realms),
            "cron": cron,
        },
    )


def _checked_connections(
    context: dg.AssetCheckExecutionContext, quickbooks: QuickBooksResource
) -> list[Connection]:
    """Active connections with a partition: a realm waiting for reconnection has no
    syncs to expect (token_health_sensor alerts about it), nor one not yet a partition."""
    partitions = set(context.instance.get_dynamic_partitions(realm_partitions.name))
    return [
        connection
        for connection in quickbooks.runtime.store.list()
        if connection.status == ConnectionStatus.ACTIVE and connection.realm_id in partitions
    ]


def build_freshness_check(name: str, entities: list[Entity], cron: str) -> dg.AssetChecksDefinition:
    """The freshness of every table of `entities`, as one step: a step per table cost each
    hourly run ~70 ms of event-log writes per table. Tables read only every so often (see
    engine.UNTRACKED_EVERY) are checked by a step of their own, which a run that skips
    their reads skips too."""
    every = {
        key: timedelta(0) if entity.cdc else UNTRACKED_EVERY
        for entity in entities
        for key in entity_keys(entity)
    }
    specs = [
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=key,
            description=f"Every connected realm materialised within two runs of "
            f"{SYNC_CRON_VARIABLE} ({cron!r}) and {_duration(OVERDUE_GRACE)}"
            + (f", counted from {_duration(due)} after its last read" if due else "")
            + "; no API call.",
        )
        for key, due in every.items()
    ]

    @dg.multi_asset_check(name=name, specs=specs, can_subset=True)
    def _check(
        context: dg.AssetCheckExecutionContext, quickbooks: QuickBooksResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected = sorted(context.selected_asset_check_keys, key=lambda k: k.to_user_string())
        try:
            connections = _checked_connections(context, quickbooks)
        except PipelineError as error:
            for check_key in selected:
                key = check_key.asset_key
                yield _not_evaluated(f"qbo.{key.path[-1]}", error, asset_key=key)
            return
        now = _now()
        for check_key in selected:
            key = check_key.asset_key
            realms = [
                _realm_freshness(context.instance, key, connection, cron, every[key])
                for connection in sorted(connections, key=lambda c: c.realm_id)
            ]
            yield _freshness_result(key, realms, cron, now)

    return _check


def by_schedule(check: str) -> Iterator[tuple[str, list[Entity]]]:
    """(step name, entities) of a kind of check: one step for the tables every run
    materialises, one for those read once a day, which a run that does not read them
    skips with them."""
    hourly = [entity for entity in ENTITIES if entity.cdc]
    daily = [entity for entity in ENTITIES if not entity.cdc]
    yield f"tables_{check}", hourly
    yield f"daily_tables_{check}", daily


live_rows_checks = [
    build_live_rows_check(name, entities) for name, entities in by_schedule(LIVE_ROWS_CHECK)
]
orphan_lines_checks = [
    build_orphan_lines_check(name, entities)
    for name, entities in by_schedule(ORPHAN_LINES_CHECK)
    if any(entity.lines for entity in entities)
]
freshness_checks = [
    build_freshness_check(name, entities, SYNC_CRON)
    for name, entities in by_schedule(FRESHNESS_CHECK)
]

# Superseded by FreshnessPolicy, which judges an asset by its latest materialisation of
# any partition; this sensor runs any check that records `dagster/fresh_until_timestamp`
# once that moment has passed, which is what a per-realm check needs.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    qbo_freshness_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=freshness_checks,
        name="qbo_freshness_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )

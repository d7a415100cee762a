"""Schedules: every connected company synced incrementally each hour, and reconciled nightly.

`qbo_incremental_schedule` (QBO_SYNC_CRON, hourly by default) starts one qbo_sync run per
active connection that has its realm partition. A realm with a run queued or running is
left for the next tick: one run per realm at a time, so a second would only queue
behind it and then read nothing new.

`qbo_reconciliation_schedule` (QBO_RECONCILE_CRON, 03:30 UTC by default: off the hour, so
it does not coincide with the hourly default) is the daily CDC pass Intuit recommends,
plus a count: each entity is synced incrementally with CDC, then QBO's COUNT(*) of rows
created before the bound is compared with the warehouse (one API call per entity), and
only a difference costs a full read, which reconciles (stored rows it does not return are
asked for by Id and marked deleted). That catches what webhooks and CDC both miss:
deletions CDC did not report (beyond its reach, or hidden by a bulk change) and rows lost
from the warehouse. It does not skip busy realms: its run queues behind the one under
way, since a night's reconciliation lost to a coincident hourly run would wait a whole
day.

Both run keys name the realm and the scheduled time, so a tick evaluated twice (a daemon
restart) never starts a run twice, and every tick's key is new; Dagster tags each run
with the schedule's name (`dagster/schedule_name`). Both crons are read when
the definitions load, and a bad one stops the load with one line naming the variable.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

# Dagster's own cron grammar and tick arithmetic (what its FreshnessPolicy uses); the
# public API has no way to ask whether a cron string is valid or when it next ticks.
from dagster._utils.schedules import cron_string_iterator, is_valid_cron_string

from qbo_pipeline.defs import jobs
from qbo_pipeline.defs.assets import SYNC_OP
from qbo_pipeline.defs.check_keys import ALL_TABLES, HOURLY_CHECKS
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import QuickBooksResource
from qbo_pipeline.defs.runs import busy_realms
from qbo_pipeline.errors import ConfigurationError, PipelineError
from qbo_pipeline.vault.store import ConnectionStatus

SYNC_CRON_VARIABLE = "QBO_SYNC_CRON"
RECONCILE_CRON_VARIABLE = "QBO_RECONCILE_CRON"
DEFAULT_SYNC_CRON = "0 * * * *"
DEFAULT_RECONCILE_CRON = "30 3 * * *"
TIMEZONE = "UTC"
# A realm is overdue once two scheduled syncs have passed since its last update, plus
# this long for the second one to land (see `overdue_at`).
OVERDUE_GRACE = timedelta(minutes=15)


def cron_from_env(variable: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's cron schedule, or `default` when it is unset or blank."""
    environ = os.environ if environ is None else environ
    value = environ.get(variable, "").strip() or default
    if not is_valid_cron_string(value):
        raise ConfigurationError(
            f"{variable}={value!r} is not a five-field cron schedule (minute hour day month "
            f"weekday, e.g. {default!r}); correct it, or unset it for {default!r}"
        )
    return value


def sync_cron(environ: Mapping[str, str] | None = None) -> str:
    return cron_from_env(SYNC_CRON_VARIABLE, DEFAULT_SYNC_CRON, environ)


def reconcile_cron(environ: Mapping[str, str] | None = None) -> str:
    return cron_from_env(RECONCILE_CRON_VARIABLE, DEFAULT_RECONCILE_CRON, environ)


def overdue_at(cron: str, last_update: datetime) -> datetime:
    """When data last updated at `last_update` becomes overdue: the second tick after it,
    plus OVERDUE_GRACE. One failed or skipped run is tolerated; for an hourly cron that is
    about two hours, and an irregular cron (weekdays only) is judged by its own ticks."""
    ticks = cron_string_iterator(
        start_timestamp=last_update.timestamp(), cron_string=cron, execution_timezone=TIMEZONE
    )
    later = (tick for tick in ticks if tick > last_update)
    next(later)
    return next(later).astimezone(UTC) + OVERDUE_GRACE


@dataclass
class Realms:
    """Which realms a tick starts runs for, and why the others wait."""

    due: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)  # realm -> why

    def log(self, context: dg.ScheduleEvaluationContext) -> None:
        for realm, why in sorted(self.waiting.items()):
            context.log.info(f"realm {realm} is not scheduled this tick: {why}")

    def skip_reason(self) -> dg.SkipReason:
        if not self.waiting:
            return dg.SkipReason("no active QuickBooks connections with a realm partition")
        waiting = ", ".join(f"{realm} ({why})" for realm, why in sorted(self.waiting.items()))
        return dg.SkipReason(f"no realm to sync: {waiting}")


def due_realms(
    context: dg.ScheduleEvaluationContext, quickbooks: QuickBooksResource, *, skip_busy: bool
) -> Realms:
    """Active connections with a partition; busy ones wait when `skip_busy`."""
    connections = quickbooks.runtime.store.list()
    partitions = set(context.instance.get_dynamic_partitions(realm_partitions.name))
    busy = busy_realms(context.instance) if skip_busy else set()
    realms = Realms()
    for connection in sorted(connections, key=lambda c: c.realm_id):
        realm = connection.realm_id
        if connection.status != ConnectionStatus.ACTIVE:
            realms.waiting[realm] = f"its connection is {connection.status}; reconnect it"
        elif realm not in partitions:
            realms.waiting[realm] = "its partition is not added yet (realm_partitions_sensor)"
        elif realm in busy:
            realms.waiting[realm] = "a qbo_sync run is queued or running"
        else:
            realms.due.append(realm)
    return realms


def realms_or_skip(
    context: dg.ScheduleEvaluationContext, quickbooks: QuickBooksResource, *, skip_busy: bool
) -> Realms | dg.SkipReason:
    """The tick's due realms (the others logged with why), or why the tick does nothing."""
    try:
        realms = due_realms(context, quickbooks, skip_busy=skip_busy)
    except PipelineError as error:
        return dg.SkipReason(f"cannot read the QuickBooks connections: {error}")
    realms.log(context)
    return realms if realms.due else realms.skip_reason()


def tick_label(context: dg.ScheduleEvaluationContext) -> str:
    """The scheduled time, to the minute in UTC: what makes a tick's run keys its own."""
    scheduled = context.scheduled_execution_time or datetime.now(UTC)
    return scheduled.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _per_realm_schedule(
    name: str,
    cron: str,
    description: str,
    *,
    key: str,
    skip_busy: bool,
    run_config: dict,
    checks: list[dg.AssetCheckKey] | None = None,
) -> dg.ScheduleDefinition:
    """A schedule requesting one qbo_sync run per due realm, keyed by realm and tick."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job=jobs.qbo_sync,
        execution_timezone=TIMEZONE,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext, quickbooks: QuickBooksResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        realms = realms_or_skip(context, quickbooks, skip_busy=skip_busy)
        if isinstance(realms, dg.SkipReason):
            return realms
        if not skip_busy:
            for realm in sorted(busy_realms(context.instance) & set(realms.due)):
                context.log.info(f"realm {realm}: the {name} run queues behind its run under way")
        tick = tick_label(context)
        return [
            dg.RunRequest(
                partition_key=realm,
                run_key=f"{key}-{realm}-{tick}",
                run_config=run_config,
                asset_selection=None if checks is None else ALL_TABLES,
                asset_check_keys=checks,
            )
            for realm in realms.due
        ]

    return _schedule


def build_incremental_schedule(cron: str) -> dg.ScheduleDefinition:
    return _per_realm_schedule(
        "qbo_incremental_schedule",
        cron,
        f"An incremental qbo_sync of every connected company ({SYNC_CRON_VARIABLE}, now "
        f"{cron!r}); a realm with a run under way waits for the next tick.",
        key="incremental",
        skip_busy=True,
        run_config={},
        # Counting every table against QBO each hour would cost more calls than the sync.
        checks=HOURLY_CHECKS,
    )


def reconcile_run_config() -> dict:
    """Every entity synced incrementally (CDC included), then counted against QBO, and read
    in full only where the counts differ (see the module docstring)."""
    return {"ops": {SYNC_OP: {"config": {"reconcile": True}}}}


def build_reconciliation_schedule(cron: str) -> dg.ScheduleDefinition:
    return _per_realm_schedule(
        "qbo_reconciliation_schedule",
        cron,
        f"The daily CDC pass and a count of every table against QBO, reading in full only "
        f"what differs ({RECONCILE_CRON_VARIABLE}, now {cron!r}); queues behind a run under "
        "way.",
        key="reconcile",
        skip_busy=False,
        run_config=reconcile_run_config(),
    )


SYNC_CRON = sync_cron()
qbo_incremental_schedule = build_incremental_schedule(SYNC_CRON)
qbo_reconciliation_schedule = build_reconciliation_schedule(reconcile_cron())

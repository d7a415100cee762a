"""Sensors: keep the realm partitions in step with the vault, and alert on token health."""

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Self

import dagster as dg
import httpx

from qbo_pipeline.alerts import (
    DELIVERY_TIMEOUT_SECONDS,
    Alert,
    AlertDeliveryFailed,
    Severity,
    alerts_from_events,
    deliver,
    expiry_alerts,
    expiry_warning_keys,
)
from qbo_pipeline.defs import jobs
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import AlertsResource, QuickBooksResource
from qbo_pipeline.errors import PipelineError
from qbo_pipeline.vault.store import Connection, ConnectionStatus

EVENTS_PER_TICK = 1000
# Without a cursor (first tick, or after a reset) only recent problems are alerted, so a
# new deployment does not replay the whole event history into the channel.
FIRST_TICK_LOOKBACK = timedelta(days=1)
# Sensor ticks time out at 60 s: stop posting to the webhook after this long.
DELIVERY_BUDGET_SECONDS = 30.0


@dg.sensor(
    job=jobs.qbo_sync, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING
)
def realm_partitions_sensor(
    context: dg.SensorEvaluationContext, quickbooks: QuickBooksResource
) -> dg.SensorResult | dg.SkipReason:
    """Adds a partition for each newly connected company and runs its first sync, and
    retires the partition of a company revoked (or purged): the schedules, sensors and
    freshness checks that go by the partitions leave it alone, and its data stays until
    `qbo-pipeline realms purge`. A company needing reauthorisation keeps its partition,
    so its checks keep saying it is stale until someone reconnects it."""
    try:
        connections = quickbooks.runtime.store.list()
    except PipelineError as error:
        return dg.SkipReason(f"cannot read the QuickBooks connections: {error}")
    by_realm = {c.realm_id: c for c in connections}
    live = {realm for realm, c in by_realm.items() if c.status != ConnectionStatus.REVOKED}
    known = set(context.instance.get_dynamic_partitions(realm_partitions.name))
    active = {realm for realm, c in by_realm.items() if c.status == ConnectionStatus.ACTIVE}
    new = sorted(active - known)
    retired = sorted(known - live)
    if new:
        context.log.info(f"new QuickBooks connections: {', '.join(new)}")
    if retired:
        context.log.info(f"retired the partitions of revoked companies: {', '.join(retired)}")
    requests = []
    if new:
        requests.append(realm_partitions.build_add_request(new))
    if retired:
        requests.append(realm_partitions.build_delete_request(retired))
    return dg.SensorResult(
        run_requests=[
            # A company reconnected after its partition was retired gets a first sync again.
            dg.RunRequest(partition_key=realm, run_key=_first_sync_key(by_realm[realm]))
            for realm in new
        ],
        dynamic_partitions_requests=requests,
    )


def _first_sync_key(connection: Connection) -> str:
    return f"first-sync-{connection.realm_id}-{connection.updated_at:%Y%m%dT%H%M%S}"


@dataclass(frozen=True)
class TokenHealthCursor:
    """What the alert sensor has already handled: events up to an id, and expiry warnings.

    `warned` maps "realm:kind" to the expiry instant warned about; see
    `alerts.expiry_warning_keys`.
    """

    after_event_id: int = 0
    warned: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> Self:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(int(data.get("after_event_id", 0)), dict(data.get("warned", {})))
        except (ValueError, TypeError, AttributeError):
            raise ValueError(
                f"the token_health_sensor cursor {text[:80]!r} is not "
                '{"after_event_id": N, "warned": {...}}; reset the cursor in the Dagster UI'
            ) from None

    def serialize(self) -> str:
        return json.dumps({"after_event_id": self.after_event_id, "warned": self.warned})


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def token_health_sensor(
    context: dg.SensorEvaluationContext, quickbooks: QuickBooksResource, alerts: AlertsResource
) -> dg.SensorResult:
    """Alerts when a company's token refresh fails, its grant is invalid or revoked, or its
    refresh token nears expiry (QBO_EXPIRY_WARNING_DAYS), in the Dagster log and, when
    QBO_ALERT_WEBHOOK_URL is set, in chat.

    Each event is alerted once: the cursor moves past every event read, even when the
    webhook could not be reached, because the alert is then in this sensor's log, and
    retrying on the next tick could flood the channel once the webhook comes back.
    """
    try:
        cursor = TokenHealthCursor.parse(context.cursor)
    except ValueError as error:
        return dg.SensorResult(skip_reason=str(error), cursor=context.cursor)
    try:
        settings = alerts.settings()
        store = quickbooks.runtime.store
        events = store.events(after_id=cursor.after_event_id, limit=EVENTS_PER_TICK)
        connections = store.list()
    except PipelineError as error:
        return dg.SensorResult(
            skip_reason=f"cannot read the QuickBooks connections: {error}", cursor=context.cursor
        )
    now = datetime.now(UTC)
    days = settings.expiry_warning_days
    since = None if context.cursor else now - FIRST_TICK_LOOKBACK
    found = alerts_from_events(events, since=since) + expiry_alerts(
        connections, now, days, cursor.warned
    )
    next_cursor = TokenHealthCursor(
        after_event_id=events[-1].id if events else cursor.after_event_id,
        warned=expiry_warning_keys(connections, now, days),
    )
    if not found:
        summary = (
            f"no token problems: {len(events)} new token events, "
            f"{len(connections)} connections checked"
        )
    else:
        summary = _report(context, found, settings.alert_webhook_url)
    return dg.SensorResult(skip_reason=summary, cursor=next_cursor.serialize())


def _report(
    context: dg.SensorEvaluationContext, alerts: list[Alert], webhook_url: str | None
) -> str:
    """Logs every alert, posts them to the webhook, and sums up what happened."""
    for alert in alerts:
        log = context.log.error if alert.severity is Severity.ERROR else context.log.warning
        log(alert.text)
    realms = ", ".join(sorted({alert.realm_id for alert in alerts}))
    summary = f"{len(alerts)} alert(s) for realm(s) {realms}"
    if webhook_url is None:
        return f"{summary}; QBO_ALERT_WEBHOOK_URL is not set, so they are in this log only"
    sent = _post_all(context, alerts, webhook_url)
    return f"{summary}; {sent} of {len(alerts)} delivered to the webhook"


def _post_all(context: dg.SensorEvaluationContext, alerts: list[Alert], webhook_url: str) -> int:
    """Posts alerts until one fails or the time budget is spent; returns how many went out."""
    started = time.monotonic()
    sent = 0
    with httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS) as http:
        for index, alert in enumerate(alerts):
            if time.monotonic() - started > DELIVERY_BUDGET_SECONDS:
                context.log.error(
                    f"alert delivery ran out of time: {len(alerts) - index} alert(s) were not "
                    "posted to QBO_ALERT_WEBHOOK_URL and are in this log only"
                )
                break
            try:
                deliver(alert, webhook_url, http=http)
            except AlertDeliveryFailed as error:
                context.log.error(
                    f"{error}; {len(alerts) - index} alert(s) not posted this tick are in "
                    "this log only"
                )
                break
            sent += 1
            context.log.info(f"{alert.kind.value} alert for realm {alert.realm_id} posted")
    return sent

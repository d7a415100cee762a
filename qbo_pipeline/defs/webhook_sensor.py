"""`qbo_webhook_sensor`: pending webhook events become qbo_sync runs, one per realm.

A burst of events for one company is one run: every tick looks at what is pending, and a
realm with a run under way waits for it to end. The run reads the Ids the events name
(`SyncConfig.webhook_events_through`) and marks the events processed only after the
warehouse has committed, so a run that fails leaves them pending and a later tick starts
another (its run key counts the failed attempts, as a run key is never reused).
"""

from __future__ import annotations

from collections import defaultdict

import dagster as dg

from qbo_pipeline.defs import jobs
from qbo_pipeline.defs.assets import SYNC_OP, entity_keys
from qbo_pipeline.defs.check_keys import without_api_calls
from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.defs.resources import QuickBooksResource
from qbo_pipeline.defs.runs import busy_realms, failed_attempts
from qbo_pipeline.errors import PipelineError
from qbo_pipeline.inbox import PendingWork
from qbo_pipeline.quickbooks.catalog import entity
from qbo_pipeline.vault.store import ConnectionStatus

TRIGGER_TAG = "qbo/trigger"
THROUGH_TAG = "qbo/webhook_events_through"
# Below the daemon's 5 s sensor loop, so no loop skips the tick (the interval counts from
# the last tick's start); each tick is a couple of small queries.
INTERVAL_SECONDS = 3


@dg.sensor(
    job=jobs.qbo_sync,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def qbo_webhook_sensor(
    context: dg.SensorEvaluationContext, quickbooks: QuickBooksResource
) -> dg.SensorResult | dg.SkipReason:
    """Starts a run for each realm with pending QuickBooks webhook events."""
    try:
        work = quickbooks.runtime.inbox.pending_work()
        if not work:
            return dg.SkipReason("no pending webhook events")
        active = {
            c.realm_id
            for c in quickbooks.runtime.store.list()
            if c.status == ConnectionStatus.ACTIVE
        }
    except PipelineError as error:
        return dg.SkipReason(f"cannot read the webhook inbox: {error}")
    by_realm: dict[str, list[PendingWork]] = defaultdict(list)
    for item in work:
        by_realm[item.realm_id].append(item)
    busy = busy_realms(context.instance)
    partitions = set(context.instance.get_dynamic_partitions(realm_partitions.name))
    requests, waiting = [], []
    for realm, items in by_realm.items():
        if realm in busy or realm not in active or realm not in partitions:
            waiting.append(f"{realm} ({_why_waiting(realm, busy, active)})")
            continue
        requests.append(_run_request(context.instance, realm, items))
    for line in waiting:
        context.log.info(f"webhook events wait for realm {line}")
    if not requests:
        return dg.SkipReason(f"pending webhook events wait: {', '.join(waiting)}")
    return dg.SensorResult(run_requests=requests)


def _run_request(
    instance: dg.DagsterInstance, realm: str, items: list[PendingWork]
) -> dg.RunRequest:
    through = max(item.through_id for item in items)
    entities = sorted({entity(item.entity) for item in items}, key=lambda e: e.name)
    tags = {TRIGGER_TAG: "webhook", THROUGH_TAG: str(through)}
    attempt = failed_attempts(instance, {**tags, "dagster/partition": realm})
    return dg.RunRequest(
        partition_key=realm,
        run_key=f"webhooks-{realm}-{through}-{attempt}",
        asset_selection=[key for e in entities for key in entity_keys(e)],
        # Only the checks that cost no API call: the run stays at what its events need.
        asset_check_keys=[key for e in entities for key in without_api_calls(e)],
        run_config={"ops": {SYNC_OP: {"config": {"webhook_events_through": through}}}},
        tags=tags,
    )


def _why_waiting(realm: str, busy: set[str], active: set[str]) -> str:
    if realm in busy:
        return "a run is under way"
    if realm not in active:
        return "its connection needs reconnecting"
    return "its partition is not added yet"

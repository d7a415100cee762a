"""What the instance says about qbo_sync runs: which realms have one under way."""

from __future__ import annotations

import dagster as dg

from qbo_pipeline.defs import jobs

PARTITION_TAG = "dagster/partition"
_UNDER_WAY = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def busy_realms(instance: dg.DagsterInstance) -> set[str]:
    """Realms with a qbo_sync run queued or running: a second one would only wait behind
    it (one run per realm), so sensors and schedules leave them for a later tick."""
    runs = instance.get_runs(
        dg.RunsFilter(job_name=jobs.qbo_sync.name, statuses=_UNDER_WAY), limit=1000
    )
    return {run.tags[PARTITION_TAG] for run in runs if PARTITION_TAG in run.tags}


def failed_attempts(instance: dg.DagsterInstance, tags: dict[str, str]) -> int:
    """How many runs with these tags ended without success (a retry needs a new run key)."""
    failed = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
    return len(instance.get_run_ids(dg.RunsFilter(tags=tags, statuses=failed)))

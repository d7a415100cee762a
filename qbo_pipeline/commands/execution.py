"""Running `qbo_sync`, `qbo_reports` and `qbo_analytics` in-process for connected
companies, for the CLI and the demo."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from qbo_pipeline.defs.partitions import realm_partitions
from qbo_pipeline.settings import Settings

# The root dagster.yaml: what `dagster dev` in the repository root uses.
EMBEDDED_INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "dagster.yaml"


@dataclass(frozen=True)
class RealmRun:
    realm_id: str
    run_id: str
    success: bool
    error: str | None


def dagster_instance(state_dir: Path) -> dg.DagsterInstance:
    """The instance of $DAGSTER_HOME, or a local one under the state folder.

    The local one needs no server, and `DAGSTER_HOME=.qbo/dagster dagster dev` shows its
    runs in the UI.
    """
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.from_config(str(dagster_home(state_dir)))


def dagster_home(state_dir: Path) -> Path:
    """A Dagster home under the state folder, configured as the repository root's embedded
    instance (one run per realm) when that file is at hand."""
    home = (state_dir / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        embedded = EMBEDDED_INSTANCE_CONFIG
        config.write_text(
            embedded.read_text() if embedded.is_file() else "telemetry:\n  enabled: false\n"
        )
    return home


def sync_realms(
    realm_ids: Iterable[str],
    *,
    instance: dg.DagsterInstance,
    full_refresh: bool = False,
    settings: Settings | None = None,
    count_check: bool = True,
) -> list[RealmRun]:
    """Run qbo_sync for each realm in turn; with `settings`, on resources built from them
    rather than from the environment. Without `count_check`, the checks are the hourly
    schedule's: none that counts rows in QBO (a call per table)."""
    from qbo_pipeline.definitions import defs
    from qbo_pipeline.defs.assets import SYNC_OP
    from qbo_pipeline.defs.check_keys import ALL_TABLES, HOURLY_CHECKS
    from qbo_pipeline.defs.resources import pipeline_resources

    job = defs.resolve_job_def("qbo_sync")
    if not count_check:
        job = job.get_subset(
            asset_selection=set(ALL_TABLES),
            asset_check_selection=set(HOURLY_CHECKS),
        )
    realms = _with_partitions(instance, realm_ids)
    run_config = {
        "ops": {SYNC_OP: {"config": {"full_refresh": full_refresh}}},
        # Progress lines from the assets, without Dagster's step-by-step debug events.
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    runs = []
    for realm in realms:
        result = job.execute_in_process(
            partition_key=realm,
            instance=instance,
            run_config=run_config,
            raise_on_error=False,
            resources=None if settings is None else pipeline_resources(settings),
        )
        runs.append(
            RealmRun(
                realm_id=realm,
                run_id=result.run_id,
                success=result.success,
                error=None if result.success else first_failure(result),
            )
        )
    return runs


def report_realms(
    realm_ids: Iterable[str],
    months: Iterable[str],
    *,
    instance: dg.DagsterInstance,
    settings: Settings | None = None,
) -> list[RealmRun]:
    """Run qbo_reports for each realm and month (a partition key: "2025-03-01")."""
    from qbo_pipeline.definitions import defs
    from qbo_pipeline.defs.resources import pipeline_resources

    job = defs.resolve_job_def("qbo_reports")
    realms, months = _with_partitions(instance, realm_ids), list(months)
    runs = []
    for realm in realms:
        for month in months:
            result = job.execute_in_process(
                partition_key=dg.MultiPartitionKey({"realm": realm, "month": month}),
                instance=instance,
                raise_on_error=False,
                resources=None if settings is None else pipeline_resources(settings),
            )
            error = None if result.success else first_failure(result)
            runs.append(RealmRun(realm, result.run_id, result.success, error))
    return runs


def build_analytics(
    *, instance: dg.DagsterInstance, settings: Settings | None = None
) -> dg.ExecuteInProcessResult:
    """Run qbo_analytics: build and test the dbt models over every company's tables."""
    from qbo_pipeline.definitions import defs
    from qbo_pipeline.defs.analytics import JOB
    from qbo_pipeline.defs.resources import pipeline_resources

    return defs.resolve_job_def(JOB).execute_in_process(
        instance=instance,
        # dbt's own summary, without a line per model and test
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        raise_on_error=False,
        resources=None if settings is None else pipeline_resources(settings),
    )


def _with_partitions(instance: dg.DagsterInstance, realm_ids: Iterable[str]) -> list[str]:
    """The realms, each now a realm partition of the instance (as the sensor would add)."""
    realms = list(realm_ids)
    known = set(instance.get_dynamic_partitions(realm_partitions.name))
    missing = [realm for realm in realms if realm not in known]
    if missing:
        instance.add_dynamic_partitions(realm_partitions.name, missing)
    return realms


def first_failure(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause and "dagster" in error.cls_name.lower():
                error = error.cause
            return error.message.strip().splitlines()[0]
    return "the run failed; see the Dagster event log"

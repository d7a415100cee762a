"""The repository's production instance (deploy/dagster.yaml) as Dagster itself loads it,
on a real PostgreSQL server: storage, the run queue and its one-run-per-realm limit."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from qbo_pipeline_tests.postgres_server import create_database

ROOT = Path(__file__).resolve().parents[2]


@dg.asset
def probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 1})


@pytest.fixture
def production_home(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", create_database(postgres_url, "dagster_instance"))
    return home


def test_runs_and_events_are_stored_on_postgresql(production_home: Path) -> None:
    """A bare postgresql:// URL works: with SQLAlchemy 2.1 every event write failed."""
    with dg.DagsterInstance.from_config(str(production_home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        result = dg.materialize([probe], instance=instance)
        assert result.success
        event = instance.get_latest_materialization_event(probe.key)
        assert event is not None and event.asset_materialization.metadata["rows"].value == 1
    with dg.DagsterInstance.from_config(str(production_home)) as again:  # another process's view
        assert again.get_run_by_id(result.run_id).status is dg.DagsterRunStatus.SUCCESS


def test_runs_are_queued_one_per_realm(production_home: Path) -> None:
    with dg.DagsterInstance.from_config(str(production_home)) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert coordinator.dequeue_interval_seconds == 1
        limits = instance.get_concurrency_config().run_queue_config
        assert limits.max_concurrent_runs == 8
        assert {
            "key": "dagster/partition",
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in limits.tag_concurrency_limits
        assert instance.run_monitoring_enabled

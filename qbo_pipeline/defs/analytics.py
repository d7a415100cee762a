"""The dbt project (analytics/) as assets downstream of the sync: staging models over
every `qbo` table, then the general ledger, the monthly profit and loss and balance
sheet, and the receivable and payable agings.

dbt builds next to the `qbo` tables, in the warehouse the sync writes (schema
`analytics`), so the models follow QBO_WAREHOUSE_URL with no profile of their own to keep
in step. Each model is rebuilt when a table it reads was synced since its last build, for
any company (an automation condition, which the daemon evaluates through the
`qbo_analytics_after_sync` sensor), and never while a sync it reads from is running.
The `qbo_analytics` job builds them by hand.
dbt's tests (unique keys, relationships, each transaction's debits equal its credits)
are the models' asset checks.
"""

import fcntl
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from qbo_pipeline.defs.assets import KEY_PREFIX as TABLES
from qbo_pipeline.defs.assets import table_key
from qbo_pipeline.defs.resources import WarehouseResource
from qbo_pipeline.warehouse.dbt_profile import dbt_environment
from qbo_pipeline.warehouse.dbt_sources import ANALYTICS

GROUP = "analytics"
KEY_PREFIX = "analytics"
JOB = "qbo_analytics"
# Like Dagster's eager condition, a model is due once a table it reads was synced, and
# waits for the models it reads to exist and for syncs in progress. Unlike it:
# - a model never built is due at the first evaluation too (eager waits for an update),
#   so that a new deployment builds the project once, whole, before any partial build;
# - only the models' own dependencies must exist: the tables they read need not all be
#   assets with a materialisation (views and report tables are written outside the
#   graph, and a company may never have been synced).
BUILD_AFTER_SYNC = (
    (
        dg.AutomationCondition.newly_missing()
        | dg.AutomationCondition.any_deps_updated().since_last_handled()
    )
    & ~dg.AutomationCondition.any_deps_missing().ignore(
        dg.AssetSelection.key_prefixes(TABLES, include_sources=True)
    )
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after_sync")
# Another process may hold the embedded DuckDB file for a moment when dbt opens it.
RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL)

project = DbtProject(project_dir=ANALYTICS, profiles_dir=ANALYTICS)
# The dbt installed with this Python, which a virtual environment need not put on PATH.
_BESIDE_PYTHON = Path(sys.executable).with_name("dbt")
DBT = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else "dbt"


def _newest_source(root: Path) -> float:
    files = [root / "dbt_project.yml"]
    for folder in ("models", "macros", "tests"):
        files.extend(p for p in (root / folder).rglob("*") if p.is_file())
    return max(p.stat().st_mtime for p in files)


def prepare(dbt_project: DbtProject = project) -> Path:
    """Parse the project into its manifest when it is missing or older than the project:
    a fresh clone, `dagster dev`, the CLI and the tests all load the models as they are.
    A file lock lets one of several processes loading at once parse, and the rest wait."""
    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with (manifest.parent / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        newest = _newest_source(dbt_project.project_dir)
        if not manifest.exists() or manifest.stat().st_mtime < newest:
            dbt = DbtCliResource(project_dir=dbt_project, dbt_executable=DBT)
            dbt.cli(["parse", "--quiet"], target_path=dbt_project.target_path).wait()
    return manifest


class QboTranslator(DagsterDbtTranslator):
    """dbt's sources are the sync's table assets (qbo/<table>); models are analytics/<name>."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return table_key(dbt_resource_props["name"])
        return dg.AssetKey([KEY_PREFIX, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        return BUILD_AFTER_SYNC


_environ_lock = threading.Lock()


@contextmanager
def profile_environment(warehouse: WarehouseResource) -> Iterator[None]:
    """The profile's variables, set while dbt starts (it reads them in this process too).

    The warehouse is opened and let go first: with DuckDB that waits for, and asks, any
    process holding the file, since dbt-duckdb fails at once on a held file."""
    settings = warehouse.settings()
    with warehouse.open() as opened:
        opened.query("SELECT 1")
    variables = dbt_environment(settings.warehouse_url, settings.default_warehouse_path)
    with _environ_lock:
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@dbt_assets(
    manifest=prepare(),
    project=project,
    dagster_dbt_translator=QboTranslator(),
    name="qbo_analytics_models",
    retry_policy=RETRY_POLICY,
)
def analytics_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    with profile_environment(warehouse):
        invocation = dbt.cli(["build"], context=context)
    yield from invocation.stream()


# The daemon evaluates the models' condition with this sensor, on from the start: the
# default automation sensor Dagster would make instead starts stopped.
analytics_after_sync = dg.AutomationConditionSensorDefinition(
    "qbo_analytics_after_sync",
    target=dg.AssetSelection.groups(GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Build the dbt models that read a table synced since they were last built.",
)

qbo_analytics = dg.define_asset_job(
    name=JOB,
    selection=dg.AssetSelection.groups(GROUP),
    description="Build the dbt models (analytics/) over every company's synced tables.",
)


@dg.definitions
def analytics() -> dg.Definitions:
    return dg.Definitions(
        assets=[analytics_models],
        jobs=[qbo_analytics],
        sensors=[analytics_after_sync],
        resources={"dbt": DbtCliResource(project_dir=project, dbt_executable=DBT)},
    )

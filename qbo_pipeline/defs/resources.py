"""Dagster resources over the runtime: QuickBooks access per realm, and the warehouse.

Secrets never pass through Dagster config: they are read from the environment when a run
starts (`Settings.from_env`), so the UI and the run storage never hold them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import dagster as dg
from pydantic import PrivateAttr

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.limiter import Limits
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.warehouse.base import Warehouse
from qbo_pipeline.warehouse.url import warehouse_kind


class QuickBooksResource(dg.ConfigurableResource):
    """API clients for connected companies, with tokens refreshed from the vault."""

    requests_per_minute: int = 500
    max_in_flight: int = 10
    refresh_margin_seconds: int | None = None
    """Refresh access tokens this long before they expire (default QBO_REFRESH_MARGIN_SECONDS)."""

    _runtime: Runtime | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._runtime = Runtime.from_env(
            limits=Limits(
                requests_per_window=self.requests_per_minute, max_in_flight=self.max_in_flight
            ),
            refresh_margin=(
                timedelta(seconds=self.refresh_margin_seconds)
                if self.refresh_margin_seconds is not None
                else None
            ),
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._runtime is not None:
            self._runtime.close()

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime.from_env()
        return self._runtime

    @contextmanager
    def client(self, realm_id: str) -> Iterator[QuickBooksClient]:
        with self.runtime.client(realm_id) as client:
            yield client


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse named by QBO_WAREHOUSE_URL (a DuckDB file under .qbo by default)."""

    @property
    def kind(self) -> str:
        """ "duckdb" or "postgres": the tag the UI shows on every table asset.

        A URL that is not one of those is reported when a run opens the warehouse; the
        definitions still load, so the UI shows the runs that fail and why.
        """
        try:
            return warehouse_kind(Settings.from_env().warehouse_url)
        except ConfigurationError:
            return "duckdb"

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        with Runtime.from_env().warehouse() as warehouse:
            yield warehouse


quickbooks_resource = QuickBooksResource()
warehouse_resource = WarehouseResource()


@dg.definitions
def resources() -> dg.Definitions:
    """Bound here once, so every asset, sensor and schedule gets them by parameter name."""
    return dg.Definitions(
        resources={"quickbooks": quickbooks_resource, "warehouse": warehouse_resource}
    )

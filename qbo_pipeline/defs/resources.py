"""Dagster resources over the runtime: QuickBooks access per realm, the warehouse, alerts.

Their fields are the settings of `qbo_pipeline.settings`, bound in the definitions to
`dg.EnvVar`s, so run storage and the UI keep the variable's name, never its value (a
client secret, a token key, a database password). Tests and the demo build them with
plain values instead (`from_settings`). A variable that is unset when the definitions
load leaves its field unset (read from the environment when used, like every setting),
so `dagster dev` with no environment still starts; the settings are checked when a run or
a tick first uses them, with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import dagster as dg
from pydantic import PrivateAttr

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.warehouse.base import Warehouse
from qbo_pipeline.warehouse.url import warehouse_kind


class SettingsFields(dg.ConfigurableResource):
    """Fields that are settings: each is the environment variable named in VARIABLES."""

    VARIABLES: ClassVar[dict[str, str]] = {}  # field name -> environment variable

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Every field whose variable is set, bound to `dg.EnvVar`."""
        environ = os.environ if environ is None else environ
        bound = {
            name: dg.EnvVar(variable)
            for name, variable in cls.VARIABLES.items()
            if environ.get(variable, "").strip()
        }
        return cls(**bound)

    @classmethod
    def from_settings(cls, settings: Settings, **fields: Any) -> Self:
        """Plain values from `settings`, for tests and the demo."""
        values = settings.as_environment()
        own = {
            name: values[variable] for name, variable in cls.VARIABLES.items() if variable in values
        }
        return cls(**own, **fields)

    def settings(self) -> Settings:
        """The fields as Settings, checked as at start-up (one line naming a bad variable).

        A field left unset falls back to its variable in the environment of the process
        using it, as the rest of the project reads its settings.
        """
        environ = dict(os.environ)
        for name, variable in self.VARIABLES.items():
            value = getattr(self, name)
            if value is not None:
                environ[variable] = str(value)
        return Settings.from_env(environ)


_APP_VARIABLES = {
    "client_id": "QUICKBOOKS_CLIENT_ID",
    "client_secret": "QUICKBOOKS_CLIENT_SECRET",
    "environment": "QUICKBOOKS_ENVIRONMENT",
    "discovery_url": "QUICKBOOKS_DISCOVERY_URL",
    "api_base_url": "QUICKBOOKS_API_BASE_URL",
    "redirect_uri": "QUICKBOOKS_REDIRECT_URI",
    "database_url": "QBO_DATABASE_URL",
    "token_keys": "QBO_TOKEN_KEYS",
    "token_key": "QBO_TOKEN_KEY",
    "state_dir": "QBO_STATE_DIR",
    "refresh_margin_seconds": "QBO_REFRESH_MARGIN_SECONDS",
    "realm_wait_seconds": "QBO_REALM_WAIT_SECONDS",
    "requests_per_minute": "QBO_REQUESTS_PER_MINUTE",
    "requests_per_second": "QBO_REQUESTS_PER_SECOND",
    "max_in_flight": "QBO_MAX_IN_FLIGHT",
    "batch_requests_per_minute": "QBO_BATCH_REQUESTS_PER_MINUTE",
}


class QuickBooksResource(SettingsFields):
    """API clients for connected companies, with tokens refreshed from the token store,
    and the webhook inbox in the same database. One runtime per run or tick, closed at
    its end."""

    VARIABLES: ClassVar[dict[str, str]] = _APP_VARIABLES

    client_id: str | None = None
    client_secret: str | None = None
    environment: str | None = None
    discovery_url: str | None = None
    api_base_url: str | None = None
    redirect_uri: str | None = None
    database_url: str | None = None
    """The token store (QBO_DATABASE_URL); unset: a SQLite file under the state folder."""
    token_keys: str | None = None
    token_key: str | None = None
    state_dir: str | None = None
    refresh_margin_seconds: str | None = None
    realm_wait_seconds: str | None = None
    """How long a run waits while another run holds the same company (QBO_REALM_WAIT_SECONDS)."""
    requests_per_minute: str | None = None
    """QBO's limits per realm (QBO_REQUESTS_PER_MINUTE, ...); unset: Intuit's."""
    requests_per_second: str | None = None
    max_in_flight: str | None = None
    batch_requests_per_minute: str | None = None

    _runtime: Runtime | None = PrivateAttr(default=None)
    _holder: str = PrivateAttr(default="a Dagster run")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._runtime = None  # built on first use: a tick that reads nothing opens nothing
        if context.run is not None:
            self._holder = f"Dagster run {context.run.run_id}"

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(self.settings())  # the limits are settings too
        return self._runtime

    @contextmanager
    def client(self, realm_id: str) -> Iterator[QuickBooksClient]:
        """The realm's client, for this run alone among every run of the realm."""
        with self.runtime.realm_turn(realm_id, self._holder), self.runtime.client(realm_id) as c:
            yield c


class WarehouseResource(SettingsFields):
    """The warehouse named by QBO_WAREHOUSE_URL (a DuckDB file under .qbo by default)."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "warehouse_url": "QBO_WAREHOUSE_URL",
        "state_dir": "QBO_STATE_DIR",
    }

    warehouse_url: str | None = None
    state_dir: str | None = None

    @property
    def kind(self) -> str:
        """ "duckdb" or "postgres": the tag the UI shows on every table asset.

        A URL that is not one of those is reported when a run opens the warehouse; the
        definitions still load, so the UI shows the runs that fail and why.
        """
        try:
            return warehouse_kind(_resolved(self.warehouse_url))
        except ConfigurationError:
            return "duckdb"

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        with Runtime(self.settings()).warehouse() as warehouse:
            yield warehouse


class AlertsResource(SettingsFields):
    """Where token alerts go (QBO_ALERT_WEBHOOK_URL) and how early expiries are warned."""

    VARIABLES: ClassVar[dict[str, str]] = {
        "webhook_url": "QBO_ALERT_WEBHOOK_URL",
        "expiry_warning_days": "QBO_EXPIRY_WARNING_DAYS",
    }

    webhook_url: str | None = None
    expiry_warning_days: str | None = None


def _resolved(value: str | None) -> str | None:
    """A field's value; one bound to dg.EnvVar is read now (the definitions are loading)."""
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def pipeline_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource the definitions bind, built from `settings` instead of the environment."""
    return {
        "quickbooks": QuickBooksResource.from_settings(settings),
        "warehouse": WarehouseResource.from_settings(settings),
        "alerts": AlertsResource.from_settings(settings),
    }


quickbooks_resource = QuickBooksResource.from_environment()
warehouse_resource = WarehouseResource.from_environment()
alerts_resource = AlertsResource.from_environment()


@dg.definitions
def resources() -> dg.Definitions:
    """Bound here once, so every asset, sensor and schedule gets them by parameter name."""
    return dg.Definitions(
        resources={
            "quickbooks": quickbooks_resource,
            "warehouse": warehouse_resource,
            "alerts": alerts_resource,
        }
    )

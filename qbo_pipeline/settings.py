"""The pipeline's configuration, read once from the environment and validated up front.

Every problem is reported as one line naming the variable and what to put in it, so a
bad deployment fails at start-up, not halfway through a sync.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from qbo_pipeline.errors import ConfigurationError
from qbo_pipeline.quickbooks.limiter import (
    DEFAULT_BATCH_REQUESTS_PER_MINUTE,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_REQUESTS_PER_MINUTE,
    DEFAULT_REQUESTS_PER_SECOND,
    Limits,
)
from qbo_pipeline.quickbooks.oauth import DISCOVERY_URLS
from qbo_pipeline.vault.database import check_database_url
from qbo_pipeline.warehouse.url import check_warehouse_url

API_BASE_URLS = {
    "sandbox": "https://sandbox-quickbooks.api.intuit.com",
    "production": "https://quickbooks.api.intuit.com",
}
DEFAULT_REDIRECT_URI = "http://localhost:8000/quickbooks/auth/callback"


@dataclass(frozen=True)
class Settings:
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    redirect_uri: str = DEFAULT_REDIRECT_URI
    environment: str = "sandbox"
    discovery_url: str = DISCOVERY_URLS["sandbox"]
    api_base_url: str = API_BASE_URLS["sandbox"]
    database_url: str | None = None
    warehouse_url: str | None = None
    state_dir: Path = Path(".qbo")
    admin_token: str | None = field(default=None, repr=False)
    alert_webhook_url: str | None = field(default=None, repr=False)
    webhook_verifier_token: str | None = field(default=None, repr=False)
    token_keys: str | None = field(default=None, repr=False)
    token_key: str | None = field(default=None, repr=False)
    refresh_margin_seconds: int = 300
    # How long a run waits for another run of the same company to finish (one at a time).
    realm_wait_seconds: int = 600
    expiry_warning_days: int = 14
    # QBO's limits per realm (QBO_API.md §3); raise them only where Intuit granted more.
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    requests_per_second: int = DEFAULT_REQUESTS_PER_SECOND
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    batch_requests_per_minute: int = DEFAULT_BATCH_REQUESTS_PER_MINUTE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        environment = (get("QUICKBOOKS_ENVIRONMENT") or "sandbox").lower()
        if environment not in API_BASE_URLS:
            raise ConfigurationError(
                f"QUICKBOOKS_ENVIRONMENT is {environment!r}; set it to sandbox or production"
            )
        settings = cls(
            client_id=get("QUICKBOOKS_CLIENT_ID"),
            client_secret=get("QUICKBOOKS_CLIENT_SECRET"),
            redirect_uri=get("QUICKBOOKS_REDIRECT_URI") or DEFAULT_REDIRECT_URI,
            environment=environment,
            discovery_url=get("QUICKBOOKS_DISCOVERY_URL") or DISCOVERY_URLS[environment],
            api_base_url=(get("QUICKBOOKS_API_BASE_URL") or API_BASE_URLS[environment]).rstrip("/"),
            database_url=get("QBO_DATABASE_URL"),
            warehouse_url=get("QBO_WAREHOUSE_URL"),
            state_dir=Path(get("QBO_STATE_DIR") or ".qbo"),
            admin_token=get("QBO_ADMIN_TOKEN"),
            alert_webhook_url=get("QBO_ALERT_WEBHOOK_URL"),
            webhook_verifier_token=get("QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN"),
            token_keys=get("QBO_TOKEN_KEYS"),
            token_key=get("QBO_TOKEN_KEY"),
            refresh_margin_seconds=_whole_number(get, "QBO_REFRESH_MARGIN_SECONDS", 300),
            realm_wait_seconds=_whole_number(get, "QBO_REALM_WAIT_SECONDS", 600),
            expiry_warning_days=_whole_number(get, "QBO_EXPIRY_WARNING_DAYS", 14),
            requests_per_minute=_positive_number(
                get, "QBO_REQUESTS_PER_MINUTE", DEFAULT_REQUESTS_PER_MINUTE
            ),
            requests_per_second=_positive_number(
                get, "QBO_REQUESTS_PER_SECOND", DEFAULT_REQUESTS_PER_SECOND
            ),
            max_in_flight=_positive_number(get, "QBO_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT),
            batch_requests_per_minute=_positive_number(
                get, "QBO_BATCH_REQUESTS_PER_MINUTE", DEFAULT_BATCH_REQUESTS_PER_MINUTE
            ),
        )
        settings.validate_urls()
        check_database_url(settings.database_url)
        check_warehouse_url(settings.warehouse_url)
        return settings

    def validate_urls(self) -> None:
        for name, value in (
            ("QUICKBOOKS_REDIRECT_URI", self.redirect_uri),
            ("QUICKBOOKS_DISCOVERY_URL", self.discovery_url),
            ("QUICKBOOKS_API_BASE_URL", self.api_base_url),
            ("QBO_ALERT_WEBHOOK_URL", self.alert_webhook_url or "https://unset"),
        ):
            if not value.startswith(("http://", "https://")):
                shown = "a value" if name == "QBO_ALERT_WEBHOOK_URL" else repr(value)
                raise ConfigurationError(f"{name} must be an http(s) URL; got {shown}")

    def as_environment(self) -> dict[str, str]:
        """The variables that give these settings through `from_env` (its inverse): for a
        child process, or for resources built from settings."""
        values = {
            "QUICKBOOKS_CLIENT_ID": self.client_id,
            "QUICKBOOKS_CLIENT_SECRET": self.client_secret,
            "QUICKBOOKS_REDIRECT_URI": self.redirect_uri,
            "QUICKBOOKS_ENVIRONMENT": self.environment,
            "QUICKBOOKS_DISCOVERY_URL": self.discovery_url,
            "QUICKBOOKS_API_BASE_URL": self.api_base_url,
            "QBO_DATABASE_URL": self.database_url,
            "QBO_WAREHOUSE_URL": self.warehouse_url,
            "QBO_STATE_DIR": str(self.state_dir),
            "QBO_ADMIN_TOKEN": self.admin_token,
            "QBO_ALERT_WEBHOOK_URL": self.alert_webhook_url,
            "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN": self.webhook_verifier_token,
            "QBO_TOKEN_KEYS": self.token_keys,
            "QBO_TOKEN_KEY": self.token_key,
            "QBO_REFRESH_MARGIN_SECONDS": str(self.refresh_margin_seconds),
            "QBO_REALM_WAIT_SECONDS": str(self.realm_wait_seconds),
            "QBO_EXPIRY_WARNING_DAYS": str(self.expiry_warning_days),
            "QBO_REQUESTS_PER_MINUTE": str(self.requests_per_minute),
            "QBO_REQUESTS_PER_SECOND": str(self.requests_per_second),
            "QBO_MAX_IN_FLIGHT": str(self.max_in_flight),
            "QBO_BATCH_REQUESTS_PER_MINUTE": str(self.batch_requests_per_minute),
        }
        return {name: value for name, value in values.items() if value is not None}

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def require_app_credentials(self) -> tuple[str, str]:
        if not self.client_id or not self.client_secret:
            raise ConfigurationError(
                "QUICKBOOKS_CLIENT_ID and QUICKBOOKS_CLIENT_SECRET must be set to your Intuit "
                "app's keys (developer.intuit.com > your app > Keys & credentials)"
            )
        return self.client_id, self.client_secret

    @property
    def limits(self) -> Limits:
        """The per-realm limits every client, refresh and check of this process obeys."""
        return Limits(
            requests_per_window=self.requests_per_minute,
            requests_per_second=self.requests_per_second,
            max_in_flight=self.max_in_flight,
            batch_requests_per_window=self.batch_requests_per_minute,
        )

    @property
    def key_variables(self) -> dict[str, str]:
        """The key settings as KeyRing.from_env reads them."""
        return {"QBO_TOKEN_KEYS": self.token_keys or "", "QBO_TOKEN_KEY": self.token_key or ""}

    @property
    def default_database_path(self) -> Path:
        return self.state_dir / "connections.sqlite"

    @property
    def demo_key_file(self) -> Path:
        """Where the demo keeps the key it generated, used when no key is configured."""
        return self.state_dir / "token.key"

    @property
    def default_warehouse_path(self) -> Path:
        return self.state_dir / "warehouse.duckdb"


def _whole_number(get, name: str, default: int) -> int:
    text = get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise ConfigurationError(f"{name} must be a whole number; got {text!r}")
    return int(text)


def _positive_number(get, name: str, default: int) -> int:
    """A count of at least 1: a limit of 0 would stop every request for good."""
    text = get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigurationError(
            f"{name} must be a positive whole number (default {default}); got {text!r}"
        )
    return int(text)

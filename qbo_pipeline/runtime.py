"""Wiring of settings, vault, OAuth client, API clients and warehouse for one process.

The CLI, the Dagster resources and the demo all build their parts here, so there is one
place that decides how a realm's client gets its tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property

from qbo_pipeline.inbox import WebhookInbox
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.limiter import Limits, RealmLimiter, limiter_for
from qbo_pipeline.quickbooks.oauth import OAuthClient
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import KeyRing
from qbo_pipeline.vault.database import Database, Held, holder_label, open_database
from qbo_pipeline.vault.errors import RealmBusy
from qbo_pipeline.vault.store import ConnectionStore
from qbo_pipeline.vault.tokens import TokenProvider
from qbo_pipeline.warehouse.base import Warehouse
from qbo_pipeline.warehouse.url import connect_warehouse


class RealmTokens:
    """The vault's token provider bound to one realm, as the API client wants it."""

    def __init__(self, provider: TokenProvider, realm_id: str) -> None:
        self._provider = provider
        self._realm_id = realm_id

    def __repr__(self) -> str:
        return f"RealmTokens(realm_id={self._realm_id!r})"

    def access_token(self) -> str:
        return self._provider.access_token(self._realm_id)

    def refresh_after_unauthorized(self, rejected: str) -> str:
        return self._provider.force_refresh(self._realm_id, rejected)


class Runtime:
    """Lazily opened parts; nothing touches the network or a database until asked."""

    def __init__(
        self,
        settings: Settings,
        *,
        limits: Limits | None = None,
        refresh_margin: timedelta | None = None,
    ) -> None:
        """`limits`: the per-realm limits, by default the settings' (QBO_REQUESTS_PER_...)."""
        self.settings = settings
        self.limits = limits or settings.limits
        self.refresh_margin = refresh_margin or timedelta(seconds=settings.refresh_margin_seconds)

    @classmethod
    def from_env(cls, **kwargs) -> Runtime:
        return cls(Settings.from_env(), **kwargs)

    @cached_property
    def keyring(self) -> KeyRing:
        """The operator's keys; on the embedded defaults, the key the demo generated."""
        if not (self.settings.token_keys or self.settings.token_key):
            key_file = self.settings.demo_key_file
            if key_file.is_file():
                return KeyRing.from_env({"QBO_TOKEN_KEY": key_file.read_text().strip()})
        return KeyRing.from_env(self.settings.key_variables)

    @cached_property
    def database(self) -> Database:
        """The token store's database, which also holds the webhook inbox."""
        return open_database(
            self.settings.database_url, default_path=self.settings.default_database_path
        )

    @cached_property
    def store(self) -> ConnectionStore:
        return ConnectionStore(self.database, self.keyring)

    @cached_property
    def inbox(self) -> WebhookInbox:
        self.store  # noqa: B018 - the inbox's triage reads the connections table
        return WebhookInbox(self.database)

    @cached_property
    def oauth(self) -> OAuthClient:
        client_id, client_secret = self.settings.require_app_credentials()
        return OAuthClient(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=self.settings.redirect_uri,
            discovery_url=self.settings.discovery_url,
        )

    def limiter(self, realm_id: str) -> RealmLimiter:
        """The realm's limiter, the one its API clients, refreshes and checks all share."""
        return limiter_for(self.settings.api_base_url, realm_id, self.limits)

    @cached_property
    def tokens(self) -> TokenProvider:
        return TokenProvider(
            self.store, self.oauth, refresh_margin=self.refresh_margin, limiter=self.limiter
        )

    @contextmanager
    def realm_turn(self, realm_id: str, what: str) -> Iterator[None]:
        """The company for this block alone among every run that takes its turn, in any
        process or machine sharing the token store: its request limits are one budget.

        Dagster's run queue already keeps one run per realm partition; this holds where
        the queue cannot see (report runs, another deployment, a CLI sync beside Dagster).
        A turn not had within QBO_REALM_WAIT_SECONDS raises RealmBusy naming the holder.
        """
        label = holder_label(what)
        try:
            with self.database.hold(
                f"realm-{realm_id}", holder=label, wait=self.settings.realm_wait_seconds
            ):
                yield
        except Held as held:
            raise RealmBusy(realm_id, held.holder, held.waited) from None

    @contextmanager
    def client(self, realm_id: str) -> Iterator[QuickBooksClient]:
        # Decrypt, and refresh if it expires within the margin, before the first request:
        # an unknown realm or a dead grant fails here, before any page is read.
        self.tokens.access_token(realm_id)
        with QuickBooksClient(
            base_url=self.settings.api_base_url,
            realm_id=realm_id,
            tokens=RealmTokens(self.tokens, realm_id),
            limiter=self.limiter(realm_id),
            limits=self.limits,
        ) as client:
            yield client

    @contextmanager
    def warehouse(self) -> Iterator[Warehouse]:
        warehouse = connect_warehouse(
            self.settings.warehouse_url, default_path=self.settings.default_warehouse_path
        )
        try:
            warehouse.ensure_schema()
            yield warehouse
        finally:
            warehouse.close()

    def close(self) -> None:
        """Release what was opened (HTTP connections, pooled database connections)."""
        if "oauth" in self.__dict__:
            self.oauth.close()
        if "database" in self.__dict__:
            self.database.close()

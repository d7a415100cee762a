"""Fixtures for the alert tests: a local HTTP server that records what it is sent, a vault
on a temporary SQLite file, and the pipeline's `connect` factory for emulator-backed tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import generate_key
from qbo_pipeline.vault.store import ConnectionStore


@pytest.fixture
def unreachable_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/services/{secrets.token_urlsafe(12)}"


@pytest.fixture
def vault_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a deployment whose token store is a fresh SQLite file."""
    for name in (
        "QBO_TOKEN_KEYS",
        "QBO_DATABASE_URL",
        "QBO_ALERT_WEBHOOK_URL",
        "QBO_EXPIRY_WARNING_DAYS",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {"QBO_TOKEN_KEY": generate_key(), "QBO_STATE_DIR": str(tmp_path / "state")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def store(vault_env: dict[str, str]) -> Iterator[ConnectionStore]:
    store = Runtime(Settings.from_env()).store
    yield store
    store.db.close()


def save_connection(
    store: ConnectionStore,
    realm_id: str,
    *,
    refresh_in: timedelta = timedelta(days=100),
    hard_in: timedelta | None = timedelta(days=1800),
) -> TokenSet:
    """Store a connection as the OAuth callback would, with the given refresh-token lifetimes."""
    now = datetime.now(UTC)
    tokens = TokenSet(
        access_token=secrets.token_urlsafe(24),
        refresh_token=secrets.token_urlsafe(24),
        access_expires_at=now + timedelta(hours=1),
        refresh_expires_at=now + refresh_in,
        refresh_hard_expires_at=now + hard_in if hard_in else None,
        realm_id=realm_id,
    )
    store.save_tokens(realm_id, tokens)
    return tokens

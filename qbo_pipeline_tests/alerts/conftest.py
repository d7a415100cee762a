"""Fixtures for the alert tests: a local HTTP server that records what it is sent, a vault
on a temporary SQLite file, and the pipeline's `connect` factory for emulator-backed tests."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline.settings import Settings
from qbo_pipeline.sync.runtime import Runtime
from qbo_pipeline.vault.connections import ConnectionStore
from qbo_pipeline.vault.crypto import generate_key
from qbo_pipeline_tests.pipeline.conftest import connect  # noqa: F401 - shared fixture


@dataclass
class Request:
    path: str
    status: int
    body: dict


@dataclass
class WebhookReceiver:
    """A chat webhook on 127.0.0.1: answers the scripted `statuses` in turn, then 200,
    and records every POST. Its URL carries a secret path, as Slack's do."""

    statuses: list[int] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    secret_path: str = field(default_factory=lambda: f"/services/{secrets.token_urlsafe(12)}")
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + self.secret_path

    @property
    def delivered(self) -> list[dict]:
        return [r.body for r in self.requests if r.status == 200]

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.requests.append(Request(self.path, status, body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


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

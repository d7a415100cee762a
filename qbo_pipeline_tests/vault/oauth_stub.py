"""A tiny Intuit-like OAuth server for vault tests: discovery, token endpoint, strict rotation.

Every refresh returns a new refresh token and kills the previous one (the strictest
reading of Intuit's rotation rules): presenting a superseded or unknown refresh token
answers 400 ``{"error": "invalid_grant"}``, exactly what a lost rotated token produces in
production. It counts refresh calls so tests can assert single-flight behaviour.
Runs on 127.0.0.1, port chosen by the OS, in a daemon thread (reachable from subprocesses).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from qbo_pipeline.quickbooks.oauth import OAuthClient, TokenSet

CLIENT_ID = "stub-client-id"
CLIENT_SECRET = "stub-client-secret"
DISCOVERY_PATH = "/.well-known/openid_configuration"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/v2/oauth2/tokens/revoke"
ACCESS_TTL = 3600
REFRESH_TTL = 8_726_400


@dataclass
class _State:
    current_refresh: dict[str, str] = field(default_factory=dict)  # realm -> live token
    issued: dict[str, str] = field(default_factory=dict)  # any refresh token ever -> realm
    requests: int = 0  # every HTTP request, discovery included
    refresh_calls: int = 0
    invalid_grants: int = 0
    forced_failures: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class OAuthStub:
    """The server plus its state; use `running()` as a context manager."""

    def __init__(self, *, refresh_delay: float = 0.0) -> None:
        self.refresh_delay = refresh_delay
        self.state = _State()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the stub is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def discovery_url(self) -> str:
        return self.base_url + DISCOVERY_PATH

    @property
    def refresh_calls(self) -> int:
        return self.state.refresh_calls

    @property
    def requests(self) -> int:
        return self.state.requests

    @property
    def invalid_grants(self) -> int:
        return self.state.invalid_grants

    def client(self) -> OAuthClient:
        return OAuthClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri="http://127.0.0.1/callback",
            discovery_url=self.discovery_url,
        )

    def issue(self, realm_id: str, *, access_expires_in: float = ACCESS_TTL) -> TokenSet:
        """A new grant for a realm, as an authorization-code exchange would return it."""
        now = datetime.now(UTC)
        with self.state.lock:
            refresh = self._new_refresh_token(realm_id)
        return TokenSet(
            access_token=_new_access_token(),
            refresh_token=refresh,
            access_expires_at=now + timedelta(seconds=access_expires_in),
            refresh_expires_at=now + timedelta(seconds=REFRESH_TTL),
            refresh_hard_expires_at=now + timedelta(days=5 * 365),
            realm_id=realm_id,
        )

    def is_live(self, refresh_token: str) -> bool:
        with self.state.lock:
            realm = self.state.issued.get(refresh_token)
            return realm is not None and self.state.current_refresh.get(realm) == refresh_token

    def fail_next_refresh(self, status: int, error: str) -> None:
        """Answer the next refresh with this OAuth error instead of tokens."""
        with self.state.lock:
            self.state.forced_failures.append((status, error))

    @contextmanager
    def running(self) -> Iterator[OAuthStub]:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)

    def _new_refresh_token(self, realm_id: str) -> str:
        token = f"RT1-stub-{secrets.token_hex(16)}"
        self.state.current_refresh[realm_id] = token
        self.state.issued[token] = realm_id
        return token

    def refresh(self, refresh_token: str) -> tuple[int, dict]:
        """The token endpoint's answer to grant_type=refresh_token."""
        if self.refresh_delay:
            time.sleep(self.refresh_delay)
        with self.state.lock:
            self.state.refresh_calls += 1
            if self.state.forced_failures:
                status, error = self.state.forced_failures.pop(0)
                self.state.invalid_grants += error == "invalid_grant"
                return status, {"error": error}
            realm = self.state.issued.get(refresh_token)
            if realm is None or self.state.current_refresh.get(realm) != refresh_token:
                self.state.invalid_grants += 1
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Incorrect or invalid refresh token",
                }
            new_refresh = self._new_refresh_token(realm)
        return 200, {
            "token_type": "bearer",
            "access_token": _new_access_token(),
            "expires_in": ACCESS_TTL,
            "refresh_token": new_refresh,
            "x_refresh_token_expires_in": REFRESH_TTL,
            "x_refresh_token_hard_expires_in": 5 * 365 * 86400,
        }


def _new_access_token() -> str:
    return f"eyJ-stub-AT-{secrets.token_hex(24)}"


def _authorised(header: str | None) -> bool:
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return header == f"Basic {expected}"


def _handler_for(stub: OAuthStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Silent: tests read counters, not access logs."""

        def do_GET(self) -> None:
            self._count()
            if self.path != DISCOVERY_PATH:
                self._json(404, {"error": "not_found"})
                return
            self._json(
                200,
                {
                    "issuer": stub.base_url,
                    "authorization_endpoint": stub.base_url + "/connect/oauth2",
                    "token_endpoint": stub.base_url + TOKEN_PATH,
                    "revocation_endpoint": stub.base_url + REVOKE_PATH,
                },
            )

        def do_POST(self) -> None:
            self._count()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not _authorised(self.headers.get("Authorization")):
                self._json(401, {"error": "invalid_client"})
            elif self.path == REVOKE_PATH:
                self._json(200, {})
            elif self.path != TOKEN_PATH:
                self._json(404, {"error": "not_found"})
            else:
                form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
                if form.get("grant_type") != "refresh_token":
                    self._json(400, {"error": "unsupported_grant_type"})
                else:
                    self._json(*stub.refresh(form.get("refresh_token", "")))

        def _count(self) -> None:
            with stub.state.lock:
                stub.state.requests += 1

        def _json(self, status: int, document: dict) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler

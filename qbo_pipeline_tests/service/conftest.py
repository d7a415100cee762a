"""The service under test, wired as a deployment would be but on loopback.

`stack` uses the module's emulator (strict refresh-token rotation, so every refresh
changes the refresh token), binds the service's port first so the real callback URL can be the
redirect URI, and builds the runtime from the environment. `service` serves it for real
with uvicorn; `client` is Starlette's in-process TestClient over the same app, for the
many quick 4xx cases. Every response either returns is recorded, so tests can check that
none of them ever carried a token.
"""

from __future__ import annotations

import secrets
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.quickbooks.oauth import OAuthClient
from qbo_pipeline.runtime import Runtime
from qbo_pipeline.service.app import create_app
from qbo_pipeline.service.server import ServiceServer
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import KeyRing, generate_key
from qbo_pipeline.vault.store import ConnectionStore
from qbo_pipeline_tests.command import CLI, clean_env

with warnings.catch_warnings():
    # Starlette nudges towards the httpx2 package; the TestClient works the same on httpx.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

CLIENT_ID = "service-test-app"
PREFIX = "/quickbooks/auth"


@dataclass
class Stack:
    emulator: EmulatorServer
    server: ServiceServer
    runtime: Runtime
    app: Starlette
    env: dict[str, str]
    admin_token: str
    client_secret: str
    responses: list[httpx.Response] = field(default_factory=list)
    known_tokens: set[str] = field(default_factory=set)
    token_calls_before: int = 0

    @property
    def realm_id(self) -> str:
        return self.emulator.config.realm_id

    @property
    def connected_page(self) -> str:
        """What the callback page says once this stack's company is connected: its name as
        QuickBooks (the emulator) knows it, and its realm."""
        listing = httpx.get(f"{self.emulator.base_url}/_emulator/companies").json()
        [name] = [c["company_name"] for c in listing if c["realm_id"] == self.realm_id]
        return f"Connected QuickBooks company {name} (realm {self.realm_id})"

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def record(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)

    def collect_tokens(self, keys: str | None = None) -> None:
        """Remember every token the store holds now: the emulator issued each of them.

        `keys` is a QBO_TOKEN_KEYS ring when the tokens were re-encrypted under new keys.
        """
        store = self.runtime.store
        if keys:
            store = ConnectionStore(store.db, KeyRing.parse(keys), create_schema=False)
        for connection in store.list():
            tokens = store.decrypt(connection.realm_id)
            self.known_tokens |= {tokens.access_token, tokens.refresh_token}

    def oauth(self) -> OAuthClient:
        """An OAuth client of the same app, as a caller keeping its own tokens would hold."""
        settings = self.runtime.settings
        return OAuthClient(
            client_id=CLIENT_ID,
            client_secret=self.client_secret,
            redirect_uri=settings.redirect_uri,
            discovery_url=settings.discovery_url,
        )

    def emulator_code(self) -> str:
        """An authorization code from the emulator, as if the user consented elsewhere."""
        response = httpx.get(
            f"{self.emulator.base_url}/connect/oauth2",
            params={
                "client_id": CLIENT_ID,
                "response_type": "code",
                "scope": "com.intuit.quickbooks.accounting",
                "redirect_uri": self.runtime.settings.redirect_uri,
                "state": "not-ours",
            },
        )
        assert response.status_code == 302
        return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]

    def token_calls(self) -> int:
        """Calls to the emulator's token endpoint since this stack was built."""
        stats = httpx.get(f"{self.emulator.base_url}/_emulator/stats").json()
        return stats["token_endpoint"]["calls"] - self.token_calls_before


@contextmanager
def served(stack: Stack, *flags: str) -> Iterator[str]:
    """`qbo-pipeline serve --port 0 FLAGS` in its own process; yields the base URL it
    announced on its first line of stderr, and stops it afterwards."""
    process = subprocess.Popen(
        [CLI, "serve", "--host", "127.0.0.1", "--port", "0", *flags],
        env={**clean_env(), **stack.env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        announced = process.stderr.readline()
        assert announced.startswith("qbo-pipeline service on http"), announced
        yield announced.split(" on ")[1].split("/quickbooks")[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


def follow_to_callback(authorize_location: str) -> str:
    """Play the browser at Intuit: the emulator consents and redirects to our callback."""
    response = httpx.get(authorize_location)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator per module (strict rotation); each test connects with its own grants."""
    config = EmulatorConfig(
        client_id=CLIENT_ID,
        client_secret=secrets.token_urlsafe(16),
        customers=2,
        invoices=2,
        rotation="strict",
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def stack(
    emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    secret = emulator.config.client_secret
    assert secret is not None
    server = ServiceServer("127.0.0.1", 0)
    admin_token = secrets.token_urlsafe(24)
    env = {
        "QUICKBOOKS_CLIENT_ID": CLIENT_ID,
        "QUICKBOOKS_CLIENT_SECRET": secret,
        "QUICKBOOKS_DISCOVERY_URL": emulator.discovery_url,
        "QUICKBOOKS_API_BASE_URL": emulator.api_base_url,
        "QUICKBOOKS_REDIRECT_URI": f"{server.base_url}{PREFIX}/callback",
        "QBO_TOKEN_KEY": generate_key(),
        "QBO_STATE_DIR": str(tmp_path / "state"),
        "QBO_ADMIN_TOKEN": admin_token,
    }
    for name in ("QBO_TOKEN_KEYS", "QBO_DATABASE_URL", "QBO_WAREHOUSE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime = Runtime(Settings.from_env())
    app = create_app(runtime)
    built = Stack(emulator, server, runtime, app, env, admin_token, secret)
    built.token_calls_before = built.token_calls()
    try:
        yield built
    finally:
        server.stop()
        runtime.close()


@pytest.fixture
def service(stack: Stack) -> Stack:
    """The stack with the service listening for real on its loopback port."""
    stack.server.start(stack.app)
    return stack


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    """In-process requests to the app; redirects are not followed, responses recorded."""
    with TestClient(stack.app, follow_redirects=False) as test_client:
        test_client.event_hooks["response"].append(stack.record)
        yield test_client

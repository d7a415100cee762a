"""Emulator servers on loopback and a connected client for each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.quickbooks.limiter import limiter_for

CLIENT_ID = "emulator-test-app"
CLIENT_SECRET = "not-a-real-secret"
REDIRECT_URI = "http://localhost:8000/callback"
ACCOUNTING = "com.intuit.quickbooks.accounting"


@dataclass
class Connection:
    """An httpx client holding one authorised grant on an emulator.

    A paced connection obeys QBO's limits through the realm's limiter, as the pipeline's
    client does, so tests about something else never meet a 429; tests of the limits
    themselves use unpaced ones (the `connected` factory).
    """

    server: EmulatorServer
    http: httpx.Client
    realm_id: str
    tokens: dict = field(repr=False)
    paced: bool = True

    def api(self, method: str, path: str, *, authorised: bool = True, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens['access_token']}"} if authorised else {}
        headers.update(kwargs.pop("headers", {}))
        url = f"/v3/company/{self.realm_id}/{path}"
        if not self.paced:
            return self.http.request(method, url, headers=headers, **kwargs)
        limiter = limiter_for(self.server.base_url, self.realm_id)
        with limiter.slot(_batch_items(path, kwargs.get("json")), batch=path == "batch"):
            return self.http.request(method, url, headers=headers, **kwargs)

    def query(self, statement: str) -> httpx.Response:
        return self.api("GET", "query", params={"query": statement, "minorversion": "75"})

    def rows(self, statement: str) -> list[dict]:
        response = self.query(statement)
        assert response.status_code == 200, response.text
        body = response.json()["QueryResponse"]
        return next((value for value in body.values() if isinstance(value, list)), [])


def _batch_items(path: str, body: object) -> int:
    """A request's weight in the limits: a batch's item count, else 1."""
    items = body.get("BatchItemRequest") if path == "batch" and isinstance(body, dict) else None
    return len(items) if isinstance(items, list) and items else 1


def authorize(http: httpx.Client, scope: str = ACCOUNTING, **overrides: str) -> httpx.Response:
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": scope,
        "redirect_uri": REDIRECT_URI,
        "state": "csrf-123",
        **overrides,
    }
    return http.get("/connect/oauth2", params={k: v for k, v in params.items() if v is not None})


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    query = parse_qs(urlparse(response.headers["location"]).query)
    return {key: values[0] for key, values in query.items()}


def token_request(http: httpx.Client, form: dict, *, auth=(CLIENT_ID, CLIENT_SECRET), **kw):
    return http.post("/oauth2/v1/tokens/bearer", data=form, auth=auth, **kw)


def refresh(http: httpx.Client, refresh_token: str, **kwargs) -> httpx.Response:
    return token_request(
        http, {"grant_type": "refresh_token", "refresh_token": refresh_token}, **kwargs
    )


def advance_clock(http: httpx.Client, seconds: float) -> None:
    http.post("/_emulator/clock", json={"advance_seconds": seconds}).raise_for_status()


def token_stats(http: httpx.Client) -> dict:
    return http.get("/_emulator/stats").json()["token_endpoint"]


def add_company(http: httpx.Client, realm_id: str, **body) -> dict:
    """A small generated company beside the emulator's own; its listing entry."""
    body = {"realm_id": realm_id, "customers": 5, "invoices": 5, **body}
    response = http.post("/_emulator/companies", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def consent_to(http: httpx.Client, realm_id: str) -> None:
    http.post("/_emulator/consent", json={"realm_id": realm_id}).raise_for_status()


def connect(
    server: EmulatorServer,
    scope: str = ACCOUNTING,
    realm_id: str | None = None,
    *,
    paced: bool = True,
) -> Connection:
    """A new grant; for `realm_id`, the user picks that company on the consent page."""
    http = httpx.Client(base_url=server.base_url, timeout=10)
    if realm_id is not None:
        consent_to(http, realm_id)
    params = callback_params(authorize(http, scope))
    form = {
        "grant_type": "authorization_code",
        "code": params["code"],
        "redirect_uri": REDIRECT_URI,
    }
    response = token_request(http, form)
    assert response.status_code == 200, response.text
    return Connection(server, http, params["realmId"], response.json(), paced)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """A shared server for tests that only read."""
    with EmulatorServer(EmulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as server:
        yield server


@pytest.fixture(scope="module")
def qbo(emulator: EmulatorServer) -> Iterator[Connection]:
    connection = connect(emulator)
    yield connection
    connection.http.close()


@pytest.fixture
def connected() -> Iterator:
    """Factory: a private server with the given config and one unpaced connection to it,
    free to break the limits."""
    started: list[tuple[EmulatorServer, Connection]] = []

    def _connected(**config) -> Connection:
        server = EmulatorServer(
            EmulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **config)
        ).start()
        connection = connect(server, paced=False)
        started.append((server, connection))
        return connection

    yield _connected
    for server, connection in started:
        connection.http.close()
        server.stop()


@pytest.fixture
def fresh() -> Iterator[Connection]:
    """A private server and connection for tests that change state."""
    config = EmulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with EmulatorServer(config) as server:
        connection = connect(server)
        yield connection
        connection.http.close()

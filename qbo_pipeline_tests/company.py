"""A connected company for tests (the `connect` fixture, registered in conftest.py): the
emulator, a vault holding its tokens, and the runtime that wires them, exactly as a
deployment would but on loopback."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from qbo_pipeline.commands.demo_run import connect_through_oauth
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.quickbooks.client import QuickBooksClient
from qbo_pipeline.quickbooks.limiter import limiter_for
from qbo_pipeline.runtime import RealmTokens, Runtime
from qbo_pipeline.settings import Settings
from qbo_pipeline.vault.crypto import generate_key

CLIENT_ID = "test-app"


@dataclass
class Company:
    emulator: EmulatorServer
    runtime: Runtime
    realm_id: str
    env: dict[str, str]

    def admin(self, path: str) -> object:
        response = httpx.get(f"{self.emulator.base_url}/_emulator/{path}", timeout=120)
        response.raise_for_status()
        return response.json()

    def entities(self, name: str) -> list[dict]:
        return self.admin(f"companies/{self.realm_id}/entities/{name}")  # type: ignore[return-value]

    def summary(self) -> dict:
        return self.admin(f"companies/{self.realm_id}/summary")  # type: ignore[return-value]

    def stats(self) -> dict:
        """The emulator's counters of what reached QBO for this realm."""
        return self.admin("stats")["realms"][self.realm_id]  # type: ignore[index]

    def reset_stats(self) -> None:
        httpx.post(f"{self.emulator.base_url}/_emulator/stats/reset").raise_for_status()

    def advance_qbo_clock(self, seconds: float) -> None:
        """Move QBO's clock on (not ours): what CDC reaches, tokens' expiry, windows."""
        httpx.post(
            f"{self.emulator.base_url}/_emulator/clock", json={"advance_seconds": seconds}
        ).raise_for_status()

    def quick_client(self, **overrides) -> QuickBooksClient:
        """An API client whose retries back off in milliseconds, so injected faults cost
        a test seconds rather than minutes."""
        settings = {"max_attempts": 4, "backoff_initial": 0.01, "backoff_max": 0.05}
        return QuickBooksClient(
            base_url=self.emulator.api_base_url,
            realm_id=self.realm_id,
            tokens=RealmTokens(self.runtime.tokens, self.realm_id),
            **(settings | overrides),
        )

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        """Call the accounting API as the app does, with the connection's token; within
        the realm's limits, which QBO applies to this call and the sync's alike."""
        token = self.runtime.tokens.access_token(self.realm_id)
        base_url = self.emulator.api_base_url.rstrip("/")
        with limiter_for(base_url, self.realm_id, self.runtime.limits).slot():
            return httpx.request(
                method,
                f"{base_url}/v3/company/{self.realm_id}/{path}",
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                **kwargs,
            )


def company_env(emulator: EmulatorServer, state_dir: Path, secret: str) -> dict[str, str]:
    return {
        "QUICKBOOKS_CLIENT_ID": CLIENT_ID,
        "QUICKBOOKS_CLIENT_SECRET": secret,
        "QUICKBOOKS_DISCOVERY_URL": emulator.discovery_url,
        "QUICKBOOKS_API_BASE_URL": emulator.api_base_url,
        "QBO_TOKEN_KEY": generate_key(),
        "QBO_STATE_DIR": str(state_dir),
    }


@pytest.fixture
def connect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Factory: start an emulator with the given config, connect its company through OAuth."""
    started: list[tuple[EmulatorServer, Runtime]] = []

    def _connect(
        warehouse_url: str | None = None, database_url: str | None = None, **config
    ) -> Company:
        secret = secrets.token_urlsafe(16)
        emulator = EmulatorServer(
            EmulatorConfig(client_id=CLIENT_ID, client_secret=secret, **config)
        ).start()
        env = company_env(emulator, tmp_path / "state", secret)
        if warehouse_url:
            env["QBO_WAREHOUSE_URL"] = warehouse_url
        if database_url:
            env["QBO_DATABASE_URL"] = database_url
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        runtime = Runtime(Settings.from_env())
        started.append((emulator, runtime))
        realm_id = connect_through_oauth(runtime)
        return Company(emulator=emulator, runtime=runtime, realm_id=realm_id, env=env)

    yield _connect
    for emulator, runtime in started:
        runtime.close()
        emulator.stop()

"""Vault fixtures: a key ring, a store on SQLite or PostgreSQL, and the emulator as Intuit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.vault import ConnectionStore, KeyRing, generate_key, open_database
from qbo_pipeline_tests.vault.intuit import CLIENT_ID, CLIENT_SECRET, Intuit, new_realm


@pytest.fixture
def keys_text() -> str:
    """A one-key QBO_TOKEN_KEYS value, text so it can be handed to spawned processes."""
    return f"k1:{generate_key()}"


@pytest.fixture
def keyring(keys_text: str) -> KeyRing:
    return KeyRing.parse(keys_text)


@pytest.fixture(scope="module")
def intuit() -> Iterator[Intuit]:
    """One emulator per module, in strict rotation (a used refresh token dies at once);
    each test draws grants for realms of its own."""
    config = EmulatorConfig(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, rotation="strict", customers=2, invoices=2
    )
    with EmulatorServer(config) as server, httpx.Client(base_url=server.base_url) as http:
        yield Intuit(server, http)


@pytest.fixture
def realm() -> str:
    return new_realm()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vault' / 'tokens.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(database_url: str, keyring: KeyRing, tmp_path: Path) -> Iterator[ConnectionStore]:
    db = open_database(database_url, default_path=tmp_path / "unused.db")
    yield ConnectionStore(db, keyring)
    db.close()

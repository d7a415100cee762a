"""Vault fixtures: a key ring, the OAuth stub, and a store on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qbo_pipeline.vault import ConnectionStore, KeyRing, generate_key, open_database
from qbo_pipeline_tests.vault.oauth_stub import OAuthStub


@pytest.fixture
def keys_text() -> str:
    """A one-key QBO_TOKEN_KEYS value, text so it can be handed to spawned processes."""
    return f"k1:{generate_key()}"


@pytest.fixture
def keyring(keys_text: str) -> KeyRing:
    return KeyRing.parse(keys_text)


@pytest.fixture
def oauth_stub() -> Iterator[OAuthStub]:
    with OAuthStub().running() as stub:
        yield stub


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

"""Fixtures shared by every test: a real PostgreSQL server, fresh databases on it, and
the warehouse backends."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from qbo_pipeline_tests.browser import browser  # noqa: F401 - shared fixture
from qbo_pipeline_tests.company import connect  # noqa: F401 - shared fixture
from qbo_pipeline_tests.postgres_server import create_database, postgres_server
from qbo_pipeline_tests.webhook_receiver import WebhookReceiver

# Real QBO payloads, kept in the repository (see fixtures/README.md for where each came from).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """A new, empty database for one test."""
    return create_database(postgres_server_url, f"qbo_test_{next(_database_numbers)}")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each warehouse backend in turn: a DuckDB file, then a fresh PostgreSQL database."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()

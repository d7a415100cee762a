"""Fixtures for the warehouse tests: both backends, and the real sandbox records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qbo_pipeline.warehouse import Warehouse, connect_warehouse


def sandbox_stream(fixtures_dir: Path, stream: str) -> list[dict]:
    """A stream's QBO entities as the API returned them (Airbyte's extra cursor dropped)."""
    records = []
    with (fixtures_dir / "qbo_sandbox_records.jsonl").open() as lines:
        for line in lines:
            message = json.loads(line)
            if message["stream"] == stream:
                entity = dict(message["data"])
                entity.pop("airbyte_cursor", None)
                records.append(entity)
    return records


@pytest.fixture
def customers(fixtures_dir: Path) -> list[dict]:
    return sandbox_stream(fixtures_dir, "customers")


@pytest.fixture
def invoices(fixtures_dir: Path) -> list[dict]:
    return sandbox_stream(fixtures_dir, "invoices")


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def warehouse(warehouse_url: str, tmp_path: Path) -> Iterator[Warehouse]:
    opened = connect_warehouse(warehouse_url, default_path=tmp_path / "unused.duckdb")
    opened.ensure_schema()
    yield opened
    opened.close()

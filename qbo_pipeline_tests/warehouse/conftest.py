"""Fixtures for the warehouse tests: both backends, and the real sandbox records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qbo_pipeline.warehouse import Warehouse, connect_warehouse
from qbo_pipeline_tests.sandbox import sandbox_stream


@pytest.fixture
def customers(fixtures_dir: Path) -> list[dict]:
    return sandbox_stream(fixtures_dir, "customers")


@pytest.fixture
def invoices(fixtures_dir: Path) -> list[dict]:
    return sandbox_stream(fixtures_dir, "invoices")


@pytest.fixture
def warehouse(warehouse_url: str, tmp_path: Path) -> Iterator[Warehouse]:
    opened = connect_warehouse(warehouse_url, default_path=tmp_path / "unused.duckdb")
    opened.ensure_schema()
    yield opened
    opened.close()

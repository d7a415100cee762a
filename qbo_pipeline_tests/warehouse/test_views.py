"""The views read out of raw JSON are created with the tables, replaced only when the
catalog changes them, and never make a run's start wait for an analyst's query."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg

from qbo_pipeline.quickbooks.catalog import ENTITIES, INVOICE
from qbo_pipeline.warehouse import connect_warehouse
from qbo_pipeline.warehouse.derived import VIEWS


def _digests(warehouse) -> dict[str, str]:
    return dict(warehouse.query("SELECT view_name, digest FROM qbo._view_digests"))


def test_views_are_created_once_and_follow_the_catalog(warehouse_url: str, tmp_path: Path):
    default = tmp_path / "unused.duckdb"
    with connect_warehouse(warehouse_url, default_path=default) as first:
        first.ensure_schema()
        created = _digests(first)
        assert set(created) == {view.name for view in VIEWS}
    with connect_warehouse(warehouse_url, default_path=default) as again:
        again.ensure_schema()
        assert _digests(again) == created  # nothing to replace

    # A catalog with fewer transactions defines the views otherwise: they follow it.
    with connect_warehouse(warehouse_url, default_path=default, entities=[INVOICE]) as fewer:
        fewer.ensure_schema()
        changed = _digests(fewer)
        assert all(changed[name] != created[name] for name in created)
        fewer.query("DROP VIEW qbo.tax_lines")
    with connect_warehouse(warehouse_url, default_path=default, entities=ENTITIES) as whole:
        whole.ensure_schema()
        assert _digests(whole) == created
        assert whole.query("SELECT count(*) FROM qbo.tax_lines") == [(0,)]


def test_an_analysts_open_query_on_a_view_does_not_hold_up_a_run(postgres_url: str, tmp_path):
    with connect_warehouse(postgres_url, default_path=tmp_path / "x.duckdb") as first:
        first.ensure_schema()
    with psycopg.connect(postgres_url) as analyst:
        # An open transaction that read the view holds a lock on it until it ends, which
        # CREATE OR REPLACE VIEW would wait for.
        analyst.execute("SELECT count(*) FROM qbo.linked_transactions").fetchall()
        done = threading.Event()

        def start_a_run() -> None:
            with connect_warehouse(postgres_url, default_path=tmp_path / "x.duckdb") as run:
                run.ensure_schema()
            done.set()

        started = time.monotonic()
        threading.Thread(target=start_a_run, daemon=True).start()
        assert done.wait(30), "ensure_schema waited for the analyst's transaction"
        assert time.monotonic() - started < 30
        analyst.rollback()

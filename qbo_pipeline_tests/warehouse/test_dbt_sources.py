"""The dbt project's sources and staging models follow the catalog: the committed files
are what it says now, and a column added to it reaches dbt at the next
`make analytics-sources`, description included."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import yaml

from qbo_pipeline.quickbooks.catalog import ENTITIES, INVOICE, Column, ColumnType
from qbo_pipeline.warehouse import dbt_sources
from qbo_pipeline.warehouse.dbt_sources import ANALYTICS, MODELS_FILE, SOURCES_FILE, STAGING


def test_the_committed_staging_models_are_what_the_catalog_says():
    assert dbt_sources.stale() == [], "run `make analytics-sources` and commit the result"


def test_every_warehouse_table_has_a_source_and_a_live_rows_model():
    files = dbt_sources.render()
    [source] = yaml.safe_load(files[SOURCES_FILE])["sources"]
    tables = {table["name"] for table in source["tables"]}
    expected = {entity.table for entity in ENTITIES}
    expected |= {entity.lines.table for entity in ENTITIES if entity.lines}
    assert expected <= tables
    assert {"linked_transactions", "tax_lines", "custom_fields", "report_lines"} <= tables
    for table in tables:
        assert STAGING / f"stg_qbo__{table}.sql" in files
    invoices = files[STAGING / "stg_qbo__invoices.sql"]
    assert "id as invoice_id" in invoices and "deleted_at is null" in invoices
    assert " raw" not in invoices  # the typed columns only


def test_a_column_added_to_the_catalog_reaches_dbt(tmp_path: Path):
    root = tmp_path / "analytics"
    shutil.copytree(ANALYTICS / "models", root / "models")
    shutil.copy(ANALYTICS / "dbt_project.yml", root)
    grown = replace(
        INVOICE,
        columns=(
            *INVOICE.columns,
            Column("ship_via", ColumnType.TEXT, ("ShipMethodRef", "value"), "How it shipped"),
        ),
    )
    entities = [grown if e is INVOICE else e for e in ENTITIES]
    wanted = dbt_sources.render(entities)
    assert "    ship_via\n" in wanted[STAGING / "stg_qbo__invoices.sql"]
    models = yaml.safe_load(wanted[MODELS_FILE])["models"]
    [model] = [m for m in models if m["name"] == "stg_qbo__invoices"]
    assert {"name": "ship_via", "description": "How it shipped"} in model["columns"]

    (root / STAGING / "stg_qbo__gone.sql").write_text("select 1")
    changed = dbt_sources.write(root, entities)
    assert STAGING / "stg_qbo__invoices.sql" in changed
    assert STAGING / "stg_qbo__gone.sql" in changed
    assert not (root / STAGING / "stg_qbo__gone.sql").exists()
    assert dbt_sources.stale(root, entities) == []


def test_the_profile_reads_the_warehouse_the_sync_writes(tmp_path: Path):
    from qbo_pipeline.warehouse.dbt_profile import PASSWORD, dbt_environment

    assert dbt_environment(None, tmp_path / "w.duckdb") == {
        "QBO_DBT_TARGET": "duckdb",
        "QBO_DBT_DUCKDB_PATH": str((tmp_path / "w.duckdb").resolve()),
    }
    found = dbt_environment("postgresql://loader:p%40ss@db.internal:6543/books", tmp_path)
    assert found == {
        "QBO_DBT_TARGET": "postgres",
        PASSWORD: "p@ss",  # dbt scrubs DBT_ENV_SECRET_ variables from its logs
        "QBO_DBT_PG_HOST": "db.internal",
        "QBO_DBT_PG_PORT": "6543",
        "QBO_DBT_PG_USER": "loader",
        "QBO_DBT_PG_DBNAME": "books",
    }

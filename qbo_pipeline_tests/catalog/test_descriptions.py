"""Every warehouse column carries a one-line description an analyst can read: in the
catalog for QuickBooks' own fields, in the warehouse schema for the pipeline's."""

from __future__ import annotations

import pytest

from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline.warehouse.schema import tables

TABLES = tables(ENTITIES)


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_every_column_and_table_has_a_one_line_description(table) -> None:
    described = {"(table)": table.description} | {c.name: c.description for c in table.columns}
    missing = sorted(name for name, text in described.items() if not text.strip())
    assert not missing, f"qbo.{table.name}: no description for {missing}"
    long_or_folded = sorted(
        name for name, text in described.items() if "\n" in text or len(text) > 160
    )
    assert not long_or_folded, f"qbo.{table.name}: not one short line: {long_or_folded}"

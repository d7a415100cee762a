"""Plans PostgreSQL picks for a full sync's reconciliation, on the statistics a first sync
really leaves: a table filled by the run and not analysed yet (autovacuum comes later).

With those statistics the planner took a nested loop over every staged id for every
stored row, and reconciling 29,000 payments took 37 s, growing with the square of the
company. The staged ids are indexed and analysed now; this asserts the plan, not a time.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from qbo_pipeline.emulator.generator import CompanyGenerator
from qbo_pipeline.quickbooks.catalog import INVOICE
from qbo_pipeline.warehouse.postgres_warehouse import PostgresWarehouse
from qbo_pipeline.warehouse.schema import SEEN, entity_table, select_unseen

REALM = "4620816365213456"
INVOICES = 3_000


def invoices(count: int) -> list[dict]:
    generator = CompanyGenerator(seed=7, customers=50, invoices=count)
    generator.hold_cards()
    bodies = [generator.invoice(number) for number in range(1, count + 1)]
    return json.loads(json.dumps(bodies, default=_number))


def _number(value: object) -> object:
    return float(value) if isinstance(value, Decimal) else str(value)


@pytest.fixture
def stale(postgres_url: str):
    """A warehouse whose invoices table holds 3,000 rows and was never analysed: the
    planner falls back on default selectivities and expects one live row of the realm."""
    rows = invoices(INVOICES)
    with PostgresWarehouse(postgres_url) as warehouse:
        warehouse.ensure_schema()
        warehouse.query("ALTER TABLE qbo.invoices SET (autovacuum_enabled = false)")
        warehouse.upsert(INVOICE, REALM, rows)
        yield warehouse, [row["Id"] for row in rows]


def test_the_unseen_ids_query_never_scans_the_staged_ids_once_per_stored_row(stale) -> None:
    warehouse, ids = stale
    with warehouse._session() as session:
        # As `unseen_ids` stages them: keyed, looked up by Id.
        session.stage(SEEN, {"id": "TEXT"}, ((entity_id,) for entity_id in ids), keyed=True)
        explained = session.run("EXPLAIN " + select_unseen(entity_table(INVOICE)), [REALM])
    plan = "\n".join(row[0] for row in explained)
    nested = [line for line in plan.splitlines() if "Nested Loop" in line]
    assert not (nested and f"Seq Scan on {SEEN}" in plan), plan


def test_reconciliation_finds_exactly_the_rows_a_full_read_missed(stale) -> None:
    warehouse, ids = stale
    assert warehouse.unseen_ids(INVOICE, REALM, ids[5:]) == sorted(ids[:5])
    assert warehouse.unseen_ids(INVOICE, REALM, ids) == []

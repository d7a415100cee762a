"""The (LastUpdatedTime, Id) index answers keyset-paged queries exactly as a scan would."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from qbo_pipeline.emulator import query
from qbo_pipeline.emulator.churn import Mutator
from qbo_pipeline.emulator.company import Company
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.store import EmulatorState
from qbo_pipeline.quickbooks.timestamps import format_qbo


def _scan(company: Company, text: str) -> list[int] | int:
    plan = query.bind(query.parse(text))
    ids = company.select(plan)
    return len(ids) if plan.count else list(query.page(plan, ids))


def _indexed(company: Company, text: str) -> list[int] | int:
    plan = query.bind(query.parse(text))
    assert plan.keyset is not None, text
    return company.count(plan) if plan.count else company.page(plan)


def _statements(company: Company, rng: random.Random) -> list[str]:
    stamps = [stamp for stamp, _ in company.tables["Invoice"].ordered()]
    statements = []
    for _ in range(40):
        low, high = sorted(rng.sample(stamps, 2))
        a, b = (format_qbo(datetime.fromtimestamp(s, UTC)) for s in (low, high))
        entity = rng.choice(("Customer", "Invoice"))
        active = rng.choice(("", "Active IN (true, false) AND ", "Active = false AND "))
        active = active if entity == "Customer" else ""
        where = rng.choice(
            (
                f"MetaData.LastUpdatedTime >= '{a}' AND MetaData.LastUpdatedTime < '{b}'",
                f"MetaData.LastUpdatedTime > '{a}' AND MetaData.LastUpdatedTime <= '{b}'",
                f"MetaData.LastUpdatedTime = '{a}'",
                f"MetaData.LastUpdatedTime >= '{a}'",
            )
        )
        start, size = rng.choice((1, 1, 3, 50)), rng.choice((1, 7, 100, 1000))
        statements.append(
            f"SELECT * FROM {entity} WHERE {active}{where} ORDERBY MetaData.LastUpdatedTime "
            f"STARTPOSITION {start} MAXRESULTS {size}"
        )
        statements.append(f"SELECT COUNT(*) FROM {entity} WHERE {active}{where}")
    return statements


@pytest.mark.parametrize("churned", [False, True])
def test_index_agrees_with_a_scan(churned: bool) -> None:
    state = EmulatorState(EmulatorConfig(customers=300, invoices=900))
    company = state.company
    rng = random.Random(3)
    if churned:  # writes keep the index in order
        Mutator(company, rng).burst(
            {"creates": 60, "updates": 80, "deletes": 30, "deactivations": 20}, state
        )
    for statement in _statements(company, rng):
        assert _indexed(company, statement) == _scan(company, statement), statement


def test_orders_the_index_cannot_answer_fall_back() -> None:
    plan = query.bind(
        query.parse(
            "select * from Invoice where MetaData.LastUpdatedTime >= '2025-01-01' "
            "orderby MetaData.LastUpdatedTime desc"
        )
    )
    assert plan.keyset is None
    assert query.bind(query.parse("select * from Invoice orderby TotalAmt")).keyset is None

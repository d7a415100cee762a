"""Replaying recorded sandbox data: served exactly as recorded, minus Airbyte's cursor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline_tests.emulator.conftest import connect


def _recorded(path: Path, stream: str) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    entities = [dict(r["data"]) for r in records if r["stream"] == stream]
    for entity in entities:
        entity.pop("airbyte_cursor")
    return sorted(entities, key=lambda e: int(e["Id"]))


@pytest.fixture(scope="module")
def replay(fixtures_dir: Path):
    path = fixtures_dir / "qbo_sandbox_records.jsonl"
    with EmulatorServer(EmulatorConfig(data=path)) as server:
        connection = connect(server)
        yield path, connection
        connection.http.close()


def test_replayed_entities_are_served_unchanged(replay) -> None:
    path, connection = replay
    for stream, entity in (("customers", "Customer"), ("invoices", "Invoice")):
        recorded = _recorded(path, stream)
        assert len(recorded) == 5
        rows = connection.rows(f"select * from {entity} where Active in (true, false)"
                               if entity == "Customer" else f"select * from {entity}")  # fmt: skip
        assert rows == recorded
        admin = connection.http.get(f"/_emulator/companies/{connection.realm_id}/entities/{entity}")
        assert admin.json() == recorded
        one = connection.api("GET", f"{entity.lower()}/{recorded[0]['Id']}").json()[entity]
        assert json.dumps(one) == json.dumps(recorded[0])


def test_replayed_data_is_queryable(replay) -> None:
    _path, connection = replay
    rows = connection.rows(
        "select * from Invoice where MetaData.LastUpdatedTime >= '2023-02-18T12:57:24-0800' "
        "order by MetaData.LastUpdatedTime"
    )
    assert rows and all(r["MetaData"]["LastUpdatedTime"] >= "2023-02-18T12:57:24" for r in rows)
    count = connection.query("select count(*) from Invoice").json()["QueryResponse"]["totalCount"]
    assert count == 5


def test_replayed_company_is_the_sandbox_company(replay) -> None:
    _path, connection = replay
    realm = connection.realm_id
    info = connection.api("GET", f"companyinfo/{realm}").json()["CompanyInfo"]
    assert info["CompanyName"] == "Craig's Design and Landscaping Services"
    assert info["CompanyAddr"]["Line1"] == "123 Sierra Way"
    [listing] = connection.http.get("/_emulator/companies").json()
    assert listing == {
        "realm_id": realm,
        "company_name": info["CompanyName"],
        "customers": 5,
        "invoices": 5,
    }

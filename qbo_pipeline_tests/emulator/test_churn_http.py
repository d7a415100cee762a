"""A company changing under a reader: mutate bursts and the background churn task."""

from __future__ import annotations

import time

from qbo_pipeline_tests.emulator.conftest import Connection
from qbo_pipeline_tests.emulator.ledger import assert_customer_balances_match


def _all(qbo: Connection, entity: str) -> dict[str, dict]:
    rows = qbo.http.get(f"/_emulator/companies/{qbo.realm_id}/entities/{entity}").json()
    return {row["Id"]: row for row in rows}


def _mutate(qbo: Connection, **body) -> dict:
    response = qbo.http.post(f"/_emulator/companies/{qbo.realm_id}/mutate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_mutate_changes_what_queries_return(fresh: Connection) -> None:
    before = {"Customer": _all(fresh, "Customer"), "Invoice": _all(fresh, "Invoice")}
    changes = _mutate(fresh, creates=6, updates=5, deletes=3, deactivations=2, seed=9)
    assert {k: len(v) for k, v in changes.items()} == {
        "created": 6,
        "updated": 5,
        "deleted": 3,
        "deactivated": 2,
    }
    deleted = {(c["entity"], c["id"]) for c in changes["deleted"]}
    for change in changes["created"]:
        assert change["id"] not in before[change["entity"]]
        if (change["entity"], change["id"]) not in deleted:  # a burst may delete its own
            where = f"Active in (true, false) and Id = '{change['id']}'"
            if change["entity"] == "Invoice":
                where = f"Id = '{change['id']}'"
            assert fresh.rows(f"select * from {change['entity']} where {where}")
    for change in changes["updated"]:
        if (change["entity"], change["id"]) in deleted or change["id"] not in before[
            change["entity"]
        ]:
            continue
        old = before[change["entity"]][change["id"]]
        new = _all(fresh, change["entity"])[change["id"]]
        assert int(new["SyncToken"]) >= int(old["SyncToken"]) + 1
        assert new["MetaData"]["LastUpdatedTime"] != old["MetaData"]["LastUpdatedTime"]
    for change in changes["deleted"]:
        assert change["entity"] == "Invoice"
        assert fresh.rows(f"select * from Invoice where Id = '{change['id']}'") == []
    deletions = fresh.http.get(f"/_emulator/companies/{fresh.realm_id}/deletions").json()
    assert {d["id"] for d in deletions} == {c["id"] for c in changes["deleted"]}
    for change in changes["deactivated"]:
        assert fresh.rows(f"select * from Customer where Id = '{change['id']}'") == []
        both = "Active in (true, false) and"
        rows = fresh.rows(f"select * from Customer where {both} Id = '{change['id']}'")
        assert rows[0]["Active"] is False
    summary = fresh.http.get(f"/_emulator/companies/{fresh.realm_id}/summary").json()
    assert_customer_balances_match(summary)


def test_mutate_is_deterministic_for_a_seed(connected) -> None:
    bursts = [
        _mutate(connected(), creates=4, updates=4, deletes=2, deactivations=1, seed=4)
        for _ in range(2)
    ]
    assert bursts[0] == bursts[1]


def test_mutate_refuses_bad_counts(fresh: Connection) -> None:
    url = f"/_emulator/companies/{fresh.realm_id}/mutate"
    assert fresh.http.post(url, json={"creates": -1}).status_code == 400
    assert fresh.http.post("/_emulator/companies/nope/mutate", json={}).status_code == 404


def test_background_churn_runs_until_stopped(fresh: Connection) -> None:
    started = fresh.http.post("/_emulator/churn", json={"rate": 200}).json()
    assert started["rate"] == 200
    time.sleep(0.5)
    stopped = fresh.http.delete("/_emulator/churn").json()
    assert stopped["rate"] == 0 and stopped["changes"] >= 20
    settled = fresh.http.get("/_emulator/churn").json()["changes"]
    time.sleep(0.2)
    assert fresh.http.get("/_emulator/churn").json()["changes"] == settled
    summary = fresh.http.get(f"/_emulator/companies/{fresh.realm_id}/summary").json()
    assert_customer_balances_match(summary)


def test_churn_from_config_starts_with_the_server(connected) -> None:
    qbo: Connection = connected(churn=100)
    time.sleep(0.4)
    assert qbo.http.get("/_emulator/churn").json()["changes"] > 0

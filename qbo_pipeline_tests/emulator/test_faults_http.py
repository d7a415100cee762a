"""Faults injected by rate, each observed the way a plain HTTP client meets it."""

from __future__ import annotations

import json

import httpx
import pytest

from qbo_pipeline.emulator.config import EmulatorConfig, parse_fault_rates
from qbo_pipeline.quickbooks.faults import fault_from_response
from qbo_pipeline_tests.emulator.conftest import Connection

QUERY = "select * from Customer maxresults 20"


def _only(qbo: Connection, kind: str) -> None:
    response = qbo.http.post("/_emulator/faults", json={"rates": {kind: 1.0}})
    assert response.status_code == 200, response.text


def _faults(qbo: Connection) -> dict:
    return qbo.http.get("/_emulator/stats").json()["realms"][qbo.realm_id]["faults"]


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("429", 429, "ThrottleExceeded"),
        ("500", 500, "ServiceUnavailable"),
        ("502", 502, "ServiceUnavailable"),
        ("503", 503, "ServiceUnavailable"),
        ("504", 504, "ServiceUnavailable"),
        ("xml", 500, "ServiceUnavailable"),
        ("fault200", 200, None),
    ],
)
def test_answered_faults(fresh: Connection, kind: str, status: int, error: str | None) -> None:
    _only(fresh, kind)
    response = fresh.query(QUERY)
    assert response.status_code == status
    if kind in ("429", "xml"):
        assert response.text.startswith("<?xml")
    if kind == "fault200":
        fault = response.json()["Fault"]
        assert fault["type"] in ("SystemFault", "SERVICE")
        assert fault["Error"][0]["code"] in ("10000", "3001")
    else:
        assert fault_from_response(response).__class__.__name__ == error
    assert "intuit_tid" in response.headers
    assert _faults(fresh) == {kind: 1}
    fresh.http.delete("/_emulator/faults")
    assert fresh.query(QUERY).status_code == 200


def test_reset_drops_the_connection_unanswered(fresh: Connection) -> None:
    _only(fresh, "reset")
    with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
        fresh.query(QUERY)
    stats = fresh.http.get("/_emulator/stats").json()["realms"][fresh.realm_id]
    assert stats["by_status"] == {"reset": 1} and stats["faults"] == {"reset": 1}
    assert stats["in_flight"] == 0


def test_timeout_holds_longer_than_the_client_waits(connected) -> None:
    qbo: Connection = connected(timeout_seconds=0.5)
    _only(qbo, "timeout")
    with pytest.raises(httpx.ReadTimeout):
        qbo.http.get(
            f"/v3/company/{qbo.realm_id}/query",
            params={"query": QUERY},
            headers={"Authorization": f"Bearer {qbo.tokens['access_token']}"},
            timeout=0.2,
        )
    # A patient client sees the connection dropped once the hold ends.
    with pytest.raises(httpx.RemoteProtocolError):
        qbo.query(QUERY)


def test_truncate_sends_half_a_json_body(fresh: Connection) -> None:
    _only(fresh, "truncate")
    response = fresh.query(QUERY)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(json.JSONDecodeError):
        response.json()
    fresh.http.delete("/_emulator/faults")
    whole = fresh.query(QUERY).content
    assert whole.startswith(response.content) and len(response.content) == len(whole) // 2


def test_rates_are_drawn_reproducibly_and_counted(connected) -> None:
    rates = "429=0.2,503=0.1,xml=0.1,fault200=0.1"

    def run() -> list[int]:
        qbo = connected(faults=parse_fault_rates(rates), fault_seed=5, limits=False)
        return [qbo.query("select count(*) from Customer").status_code for _ in range(60)]

    first, second = run(), run()
    assert first == second
    assert 10 <= sum(status != 200 for status in first) <= 45
    assert {429, 503, 500} <= set(first)


def test_one_shot_faults_still_work_beside_rates(fresh: Connection) -> None:
    fresh.http.post("/_emulator/faults", json={"status": 502, "count": 1, "shape": "xml"})
    response = fresh.query(QUERY)
    assert response.status_code == 502 and response.text.startswith("<?xml")
    assert fresh.query(QUERY).status_code == 200


@pytest.mark.parametrize(
    "rates",
    [{"418": 0.1}, {"429": 1.5}, {"429": 0.6, "500": 0.6}, {"429": "often"}],
)
def test_bad_rates_are_refused(fresh: Connection, rates: dict) -> None:
    assert fresh.http.post("/_emulator/faults", json={"rates": rates}).status_code == 400
    with pytest.raises(ValueError):
        EmulatorConfig(faults=rates)


def test_parse_fault_rates() -> None:
    assert parse_fault_rates("429=0.02, timeout=0.005") == {"429": 0.02, "timeout": 0.005}
    assert parse_fault_rates("") == {}
    for text in ("429", "429=lots", "teapot=0.1"):
        with pytest.raises(ValueError):
            parse_fault_rates(text)

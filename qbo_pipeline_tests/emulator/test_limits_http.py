"""QBO's per-realm limits and the answer-time model, over HTTP (QBO_API.md §3)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from qbo_pipeline.quickbooks.faults import fault_from_response
from qbo_pipeline_tests.emulator.conftest import Connection, advance_clock

THROTTLE_XML = "message=ThrottleExceeded; errorCode=003001; statusCode=429"


def _realm_stats(qbo: Connection) -> dict:
    return qbo.http.get("/_emulator/stats").json()["realms"][qbo.realm_id]


def _parallel(qbo: Connection, count: int, statement: str) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: qbo.query(statement), range(count)))


def test_eleventh_concurrent_request_is_throttled(connected) -> None:
    qbo: Connection = connected(latency_ms=4000, latency_jitter=0)
    qbo.http.post("/_emulator/stats/reset")
    # 1000 rows' worth of latency: each holds its slot for 0.4 s x (rows / 100)
    responses = _parallel(qbo, 11, "select * from Invoice maxresults 100")
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(429) >= 1 and statuses.count(200) == 11 - statuses.count(429)
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.text.startswith("<?xml") and THROTTLE_XML in throttled.text
    assert throttled.headers["Retry-After"] == "1"
    assert fault_from_response(throttled).__class__.__name__ == "ThrottleExceeded"
    stats = _realm_stats(qbo)
    assert stats["peak_in_flight"] == 10
    assert stats["throttled"] == statuses.count(429) == stats["by_status"]["429"]
    assert stats["requests"] == 11 and stats["in_flight"] == 0


def test_window_of_requests_per_minute_then_it_frees(connected) -> None:
    qbo: Connection = connected(requests_per_minute=20)
    for _ in range(20):
        assert qbo.query("select count(*) from Customer").status_code == 200
    advance_clock(qbo.http, 30)
    refused = qbo.query("select count(*) from Customer")
    assert refused.status_code == 429 and THROTTLE_XML in refused.text
    assert 29 <= int(refused.headers["Retry-After"]) <= 30
    # OAuth and the admin API are not metered
    assert qbo.http.get("/_emulator/companies").status_code == 200
    advance_clock(qbo.http, 31)
    assert qbo.query("select count(*) from Customer").status_code == 200
    stats = _realm_stats(qbo)
    assert stats["requests"] == 22 and stats["throttled"] == 1
    assert stats["by_status"] == {"200": 21, "429": 1}


def test_limits_can_be_lifted_and_set(connected) -> None:
    qbo: Connection = connected(limits=False, requests_per_minute=2)
    for _ in range(4):
        assert qbo.query("select count(*) from Customer").status_code == 200
    limits = qbo.http.post("/_emulator/limits", json={"enabled": True}).json()
    assert limits == {"enabled": True, "requests_per_minute": 2, "max_in_flight": 10}
    assert qbo.query("select count(*) from Customer").status_code == 429
    qbo.http.post("/_emulator/limits", json={"requests_per_minute": 500})
    assert qbo.query("select count(*) from Customer").status_code == 200
    bad = qbo.http.post("/_emulator/limits", json={"max_in_flight": 0})
    assert bad.status_code == 400


def test_latency_scales_with_rows_and_overlaps(connected) -> None:
    qbo: Connection = connected(latency_ms=1000, latency_jitter=0)

    def timed(statement: str) -> float:
        started = time.perf_counter()
        assert qbo.query(statement).status_code == 200
        return time.perf_counter() - started

    small = timed("select * from Invoice maxresults 10")  # floor: 50 rows = 0.05 s
    large = timed("select * from Invoice maxresults 150")  # 150 rows = 0.15 s
    assert 0.05 <= small < 0.12 and 0.15 <= large < 0.25
    started = time.perf_counter()
    responses = _parallel(qbo, 8, "select * from Invoice maxresults 150")
    assert all(r.status_code == 200 for r in responses)
    assert time.perf_counter() - started < 0.6  # 8 x 0.15 s one after another would be 1.2 s
    qbo.http.post("/_emulator/latency", json={"ms": 0})
    assert timed("select * from Invoice maxresults 150") < 0.1
    assert qbo.http.get("/_emulator/latency").json() == {"ms": 0.0, "jitter": 0.0}

"""QBO's per-realm limits and the answer-time model, over HTTP (QBO_API.md §3)."""

from __future__ import annotations

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


LARGE = "select * from Invoice maxresults 1000"  # 1000 rows: a whole page's latency
SMALL = "select * from Invoice maxresults 10"  # 10 rows, charged as 50: a twentieth of it


def _small_answers_during(qbo: Connection, large: int) -> int:
    """How many SMALL answers one client gets, one after another, while `large` LARGE
    queries run in parallel, by the emulator's count of the realm's requests.

    The small answers are the yardstick: no clock is read, so a slow machine slows the
    yardstick with the rest.
    """
    qbo.http.post("/_emulator/stats/reset").raise_for_status()
    with ThreadPoolExecutor(large) as pool:
        running = [pool.submit(qbo.query, LARGE) for _ in range(large)]
        while not all(future.done() for future in running):
            assert qbo.query(SMALL).status_code == 200
        assert all(future.result().status_code == 200 for future in running)
    stats = _realm_stats(qbo)
    assert stats["by_status"] == {"200": stats["requests"]} and stats["in_flight"] == 0
    return stats["requests"] - large


def test_latency_scales_with_rows_and_overlaps(connected) -> None:
    qbo: Connection = connected(invoices=1000, latency_ms=0, latency_jitter=0)
    assert qbo.query(LARGE).status_code == 200  # the first read of a page costs the most
    latency = qbo.http.post("/_emulator/latency", json={"ms": 3000})
    assert latency.json() == {"ms": 3000.0, "jitter": 0.0}

    # One 1000-row answer (3 s) lasts as long as ~20 small ones (0.15 s each); were the
    # wait the same for every answer, it would last about one.
    one = _small_answers_during(qbo, 1)
    assert one >= 8

    # Eight large answers at once take one large answer's time, not eight: they overlap.
    eight = _small_answers_during(qbo, 8)
    assert eight < 2 * one
    assert _realm_stats(qbo)["peak_in_flight"] == 9  # eight large and a small one

    # Turned off, the wait is gone. (Counting small answers again would measure the
    # machine: with no modelled wait, both sizes take only their real serving time.)
    assert qbo.http.post("/_emulator/latency", json={"ms": 0}).status_code == 200
    assert qbo.http.get("/_emulator/latency").json() == {"ms": 0.0, "jitter": 0.0}

"""QBO's per-realm limits and the answer-time model, over HTTP (QBO_API.md §3)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import httpx

from qbo_pipeline.emulator.limits import Limits, Rejection
from qbo_pipeline.quickbooks.faults import fault_from_response
from qbo_pipeline_tests.emulator.conftest import Connection, advance_clock

THROTTLE_XML = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
# QBO's throttle answer (QBO_API.md §3), XML even to a client that accepts JSON.
THROTTLE_FAULT = (
    '<Fault type="SERVICE"><Error code="3001"><Message>message=ThrottleExceeded; '
    "errorCode=003001; statusCode=429</Message><Detail>The request limit was reached.  "
    "Try again later</Detail></Error></Fault></IntuitResponse>"
)
COUNT = "select count(*) from Customer"
NO_THROTTLES = {"rate": 0, "second": 0, "concurrency": 0, "batch": 0}


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
    assert stats["throttled_by_reason"]["concurrency"] == statuses.count(429)
    assert stats["requests"] == 11 and stats["in_flight"] == 0


def test_eleventh_request_within_a_second_is_throttled_for_a_second(connected) -> None:
    qbo: Connection = connected()
    with qbo.server.state.clock.frozen():  # one instant: the eleven are within a second
        assert [qbo.query(COUNT).status_code for _ in range(10)] == [200] * 10
        refused = qbo.query(COUNT)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/xml")
    assert refused.text.startswith("<?xml") and THROTTLE_FAULT in refused.text
    assert refused.headers["Retry-After"] == "1"
    fault = fault_from_response(refused)
    assert type(fault).__name__ == "ThrottleExceeded" and fault.retry_after == 1
    advance_clock(qbo.http, 1)  # as Retry-After said: admitted again
    assert qbo.query(COUNT).status_code == 200
    stats = _realm_stats(qbo)
    assert stats["throttled_by_reason"] == NO_THROTTLES | {"second": 1}
    assert stats["peak_per_second"] == 10 and stats["peak_per_minute"] == 11


def _now(qbo: Connection) -> float:
    return qbo.http.get("/_emulator/clock").json()["now"]


def _seconds(qbo: Connection, requests: int) -> None:
    """`requests` queries, ten to an emulated second, the clock moved past the last."""
    for sent in range(requests):
        assert qbo.query(COUNT).status_code == 200
        if sent % 10 == 9:
            advance_clock(qbo.http, 1)


def test_window_of_requests_per_minute_then_it_frees(connected) -> None:
    qbo: Connection = connected(requests_per_minute=20)
    _seconds(qbo, 20)  # at 0 s and 1 s
    advance_clock(qbo.http, 29)  # 31 s after the first ten
    refused = qbo.query(COUNT)
    assert refused.status_code == 429 and THROTTLE_XML in refused.text
    assert refused.headers["Retry-After"] == "29"
    # OAuth and the admin API are not metered
    assert qbo.http.get("/_emulator/companies").status_code == 200
    advance_clock(qbo.http, 28)
    assert qbo.query(COUNT).status_code == 429  # a second early
    advance_clock(qbo.http, 1)
    assert qbo.query(COUNT).status_code == 200
    stats = _realm_stats(qbo)
    assert stats["requests"] == 23 and stats["throttled"] == 2
    assert stats["by_status"] == {"200": 21, "429": 2}
    assert stats["throttled_by_reason"] == NO_THROTTLES | {"rate": 2}
    assert stats["peak_per_minute"] == 20 and stats["peak_per_second"] == 10


def test_the_default_minute_holds_500_and_says_when_it_frees(connected) -> None:
    qbo: Connection = connected()
    start = _now(qbo)
    _seconds(qbo, 500)  # 50 emulated seconds, and the real time they took
    refused = qbo.query(COUNT)
    elapsed = _now(qbo) - start
    assert refused.status_code == 429
    # The first ten leave the window 60 s after they came, at least 50 s ago.
    assert math.ceil(60 - elapsed) <= int(refused.headers["Retry-After"]) <= 10
    advance_clock(qbo.http, int(refused.headers["Retry-After"]))
    assert qbo.query(COUNT).status_code == 200
    stats = _realm_stats(qbo)
    assert stats["peak_per_minute"] == 500 and stats["peak_per_second"] == 10
    assert stats["throttled_by_reason"] == NO_THROTTLES | {"rate": 1}


def _batch(qbo: Connection, items: int = 1) -> httpx.Response:
    body = {"BatchItemRequest": [{"bId": str(n), "Query": COUNT} for n in range(items)]}
    return qbo.api("POST", "batch", json=body)


def test_forty_first_batch_in_a_minute_is_throttled(connected) -> None:
    qbo: Connection = connected()
    start = _now(qbo)
    for sent in range(40):
        assert _batch(qbo).status_code == 200
        if sent % 10 == 9:
            advance_clock(qbo.http, 1)  # each item is a request of the 10 a second
    refused = _batch(qbo)
    elapsed = _now(qbo) - start
    assert refused.status_code == 429 and THROTTLE_FAULT in refused.text
    # The first batch, at least 4 s ago, leaves the window 60 s after it came.
    retry_after = int(refused.headers["Retry-After"])
    assert math.ceil(60 - elapsed) <= retry_after <= 56
    assert qbo.query(COUNT).status_code == 200  # other requests still pass
    advance_clock(qbo.http, retry_after)
    assert _batch(qbo).status_code == 200
    stats = _realm_stats(qbo)
    assert stats["batch_calls"] == 41 and stats["peak_batches_per_minute"] == 40
    assert stats["throttled_by_reason"] == NO_THROTTLES | {"batch": 1}


def test_a_batch_of_thirty_takes_a_whole_second(connected) -> None:
    qbo: Connection = connected()
    with qbo.server.state.clock.frozen():
        assert qbo.query(COUNT).status_code == 200
        refused = _batch(qbo, 30)  # 30 items can never fit a second of 10: an empty one
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    advance_clock(qbo.http, 1)
    with qbo.server.state.clock.frozen():
        assert _batch(qbo, 30).status_code == 200
        assert qbo.query(COUNT).status_code == 429
    stats = _realm_stats(qbo)
    assert stats["peak_per_second"] == 10 and stats["peak_per_minute"] == 31
    assert stats["throttled_by_reason"] == NO_THROTTLES | {"second": 2}


def test_batch_limits_are_per_app_and_per_realm() -> None:
    limits = Limits(batch_requests_per_minute=2, realm_batch_requests_per_minute=3)
    assert limits.charge("r", 1, 0.0, app="a") is None
    assert limits.charge("r", 1, 0.0, app="a") is None
    assert limits.charge("r", 1, 0.0, app="a") == Rejection("batch", 60)  # the app's two
    assert limits.charge("r", 1, 0.0, app="b") is None
    assert limits.charge("r", 1, 0.5, app="c") == Rejection("batch", 60)  # the realm's three
    assert limits.charge("other", 1, 0.5, app="c") is None
    assert limits.report("r")["throttled_by_reason"] == NO_THROTTLES | {"batch": 2}


def test_limits_can_be_lifted_and_set(connected) -> None:
    qbo: Connection = connected(limits=False, requests_per_minute=2)
    for _ in range(4):
        assert qbo.query("select count(*) from Customer").status_code == 200
    assert _realm_stats(qbo)["peak_per_minute"] == 4  # measured even when off
    limits = qbo.http.post("/_emulator/limits", json={"enabled": True}).json()
    assert limits == {
        "enabled": True,
        "requests_per_minute": 2,
        "requests_per_second": 10,
        "max_in_flight": 10,
    }
    assert qbo.query("select count(*) from Customer").status_code == 429
    qbo.http.post("/_emulator/limits", json={"requests_per_minute": 500})
    assert qbo.query("select count(*) from Customer").status_code == 200
    bad = qbo.http.post("/_emulator/limits", json={"max_in_flight": 0})
    assert bad.status_code == 400
    raised = qbo.http.post("/_emulator/limits", json={"requests_per_second": 40}).json()
    assert raised["requests_per_second"] == 40
    assert qbo.http.post("/_emulator/limits", json={"requests_per_second": 0}).status_code == 400


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
    # The yardstick is requests answered one after another, as many as the latency lets
    # through: a limit of 10 a second would measure the limit instead.
    qbo: Connection = connected(
        invoices=1000, latency_ms=0, latency_jitter=0, requests_per_second=1000
    )
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

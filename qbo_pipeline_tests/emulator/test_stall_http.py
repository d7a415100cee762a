"""A token endpoint that stalls: held requests wait while everything else answers at once,
and DELETE lets them through (what a client's timeouts and single-flight refresh meet)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from qbo_pipeline_tests.emulator.conftest import (
    REDIRECT_URI,
    Connection,
    add_company,
    authorize,
    callback_params,
    connect,
    consent_to,
    refresh,
    token_request,
    token_stats,
)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as executor:
        yield executor


@pytest.fixture
def two(connected) -> Iterator[tuple[Connection, Connection]]:
    """Connections to two companies of one emulator: its own and 4620816365213456."""
    first = connected(customers=3, invoices=3)
    add_company(first.http, "4620816365213456", seed=11, customers=3, invoices=3)
    second = connect(first.server, realm_id="4620816365213456")
    consent_to(first.http, first.realm_id)
    yield first, second
    second.http.close()


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def _in_thread(pool: ThreadPoolExecutor, base_url: str, form: dict) -> Future[httpx.Response]:
    """A token request from its own client, so the test's client stays free."""

    def post() -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            return token_request(http, form)

    return pool.submit(post)


def _stall(http: httpx.Client, realm_id: str | None, seconds: float | None) -> dict:
    response = http.post("/_emulator/oauth/stall", json={"realm_id": realm_id, "seconds": seconds})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_stalled_realm_waits_while_others_answer_until_delete(two, pool) -> None:
    first, second = two
    assert _stall(first.http, "4620816365213456", None) == {
        "active": True,
        "realm_id": "4620816365213456",
        "seconds": None,
        "held": 0,
    }
    form = {"grant_type": "refresh_token", "refresh_token": second.tokens["refresh_token"]}
    held = _in_thread(pool, first.server.base_url, form)
    _wait_until(lambda: token_stats(first.http)["stalled"] == 1)

    other = refresh(first.http, first.tokens["refresh_token"])
    assert other.status_code == 200
    first.tokens = other.json()
    assert first.query("select count(*) from Customer").status_code == 200
    assert second.query("select count(*) from Customer").status_code == 200
    assert first.http.get("/_emulator/oauth/stall").json()["held"] == 1
    assert not held.done()

    released = first.http.delete("/_emulator/oauth/stall").json()
    assert released == {"active": False, "realm_id": None, "seconds": None, "released": 1}
    answer = held.result(timeout=5)
    assert answer.status_code == 200 and answer.json()["refresh_token"]
    stats = token_stats(first.http)
    assert stats["stalled"] == 1 and stats["refresh_successes"] == 2
    assert refresh(first.http, answer.json()["refresh_token"]).status_code == 200


def test_a_stalled_realms_code_exchange_is_held_too(two, pool) -> None:
    first, _second = two
    consent_to(first.http, "4620816365213456")
    stalled_code = callback_params(authorize(first.http))["code"]
    consent_to(first.http, first.realm_id)
    free_code = callback_params(authorize(first.http))["code"]
    _stall(first.http, "4620816365213456", None)

    exchange = {"grant_type": "authorization_code", "redirect_uri": REDIRECT_URI}
    held = _in_thread(pool, first.server.base_url, {**exchange, "code": stalled_code})
    _wait_until(lambda: token_stats(first.http)["stalled"] == 1)
    assert token_request(first.http, {**exchange, "code": free_code}).status_code == 200
    assert not held.done()
    first.http.delete("/_emulator/oauth/stall").raise_for_status()
    assert held.result(timeout=5).status_code == 200
    assert token_stats(first.http)["grants"]["authorization_code"] == 4


def test_every_realm_for_some_seconds(two, pool) -> None:
    first, second = two
    _stall(first.http, None, 0.3)
    started = time.perf_counter()
    answers = list(
        pool.map(
            lambda qbo: refresh(qbo.http, qbo.tokens["refresh_token"]),
            (first, second),
        )
    )
    assert time.perf_counter() - started >= 0.3
    assert [answer.status_code for answer in answers] == [200, 200]
    assert token_stats(first.http)["stalled"] == 2
    assert first.http.get("/_emulator/oauth/stall").json()["held"] == 0


def test_stopping_the_emulator_answers_held_requests(connected, pool) -> None:
    qbo = connected(customers=1, invoices=0)
    _stall(qbo.http, None, None)
    form = {"grant_type": "refresh_token", "refresh_token": qbo.tokens["refresh_token"]}
    held = _in_thread(pool, qbo.server.base_url, form)
    _wait_until(lambda: token_stats(qbo.http)["stalled"] == 1)
    started = time.perf_counter()
    qbo.server.stop()
    assert time.perf_counter() - started < 5
    assert held.result(timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"realm_id": None, "seconds": 0}, 400),
        ({"realm_id": None, "seconds": -1}, 400),
        ({"realm_id": None, "seconds": "2"}, 400),
        ({"realm_id": None, "seconds": True}, 400),
        ({"realm_id": 5, "seconds": None}, 400),
        ({"realm_id": "nowhere", "seconds": None}, 404),
    ],
)
def test_bad_stall_bodies(emulator, body: dict, status: int) -> None:
    response = httpx.post(f"{emulator.base_url}/_emulator/oauth/stall", json=body)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert httpx.get(f"{emulator.base_url}/_emulator/oauth/stall").json()["active"] is False

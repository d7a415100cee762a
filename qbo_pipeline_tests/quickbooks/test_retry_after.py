"""The client waits exactly what QBO's Retry-After says (capped by its longest backoff),
against the emulator's own limits: no injected fault, a real throttle.

The client's limiter is generous on purpose, so the emulator is what stops it. Its sleeps
go through the `sleep` hook, which records them and moves the emulator's clock instead
of waiting, so a minute's throttle costs no time and the retry is admitted exactly when
the header said.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.server import EmulatorServer
from qbo_pipeline.quickbooks.catalog import CUSTOMER
from qbo_pipeline.quickbooks.client import FixedToken, QuickBooksClient
from qbo_pipeline.quickbooks.limiter import Limits, RealmLimiter
from qbo_pipeline_tests.emulator.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    Connection,
    advance_clock,
    connect,
)

GENEROUS = Limits(requests_per_window=100_000, requests_per_second=10_000, max_in_flight=50)


class Recorder:
    """The client's sleep hook, and the Retry-After of every 429 it was answered."""

    def __init__(self, admin: httpx.Client) -> None:
        self.admin = admin
        self.sleeps: list[float] = []
        self.retry_afters: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        advance_clock(self.admin, seconds)

    def response(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self.retry_afters.append(float(response.headers["Retry-After"]))


@pytest.fixture
def qbo() -> Iterator[Connection]:
    """An emulator with QBO's real limits, and a grant on its company."""
    config = EmulatorConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    with EmulatorServer(config) as server:
        connection = connect(server, paced=False)
        yield connection
        connection.http.close()


def client(qbo: Connection, recorder: Recorder, cap: float) -> QuickBooksClient:
    http = httpx.Client(timeout=10, event_hooks={"response": [recorder.response]})
    return QuickBooksClient(
        base_url=qbo.server.api_base_url,
        realm_id=qbo.realm_id,
        tokens=FixedToken(qbo.tokens["access_token"]),
        http=http,
        limiter=RealmLimiter(GENEROUS),
        max_attempts=20,
        backoff_initial=0.01,
        backoff_max=cap,
        sleep=recorder.sleep,
    )


def fill_the_minute(qbo: Connection) -> None:
    """500 requests in the realm's minute: 16 batches of 30 items and one of 20, one to
    an emulated second, as each takes a whole second of the 10 a second."""
    count = {"Query": "select count(*) from Customer"}
    for items in [30] * 16 + [20]:
        body = {"BatchItemRequest": [{"bId": str(n), **count} for n in range(items)]}
        assert qbo.api("POST", "batch", json=body).status_code == 200
        advance_clock(qbo.http, 1)


def throttles(qbo: Connection) -> dict:
    stats = qbo.http.get("/_emulator/stats").json()["realms"][qbo.realm_id]
    return stats["throttled_by_reason"]


def test_the_eleventh_request_in_a_second_waits_the_second_it_is_told(qbo) -> None:
    recorder = Recorder(qbo.http)
    with client(qbo, recorder, cap=60) as api:
        counts = [api.count(CUSTOMER) for _ in range(11)]
    assert len(set(counts)) == 1 and counts[0] > 0  # all eleven answered, the last too
    assert recorder.retry_afters == [1.0]
    assert recorder.sleeps == [1.0]
    assert throttles(qbo)["second"] == 1


def test_a_full_minute_waits_until_the_window_frees(qbo) -> None:
    fill_the_minute(qbo)
    recorder = Recorder(qbo.http)
    with client(qbo, recorder, cap=60) as api:
        assert api.count(CUSTOMER) > 0
    # The first batch came 17 emulated seconds (and a little real time) ago.
    assert len(recorder.retry_afters) == 1 and 40 <= recorder.retry_afters[0] <= 43
    assert recorder.sleeps == recorder.retry_afters  # exactly what it was told, once
    assert throttles(qbo)["rate"] == 1


def test_a_cap_below_retry_after_waits_the_cap_and_asks_again(qbo) -> None:
    fill_the_minute(qbo)
    recorder = Recorder(qbo.http)
    with client(qbo, recorder, cap=15) as api:
        assert api.count(CUSTOMER) > 0
    told = recorder.retry_afters
    assert told[0] > 15 and len(told) >= 3  # e.g. told 43, 28, 13 after waits of 15
    assert recorder.sleeps == [min(seconds, 15) for seconds in told]
    assert throttles(qbo)["rate"] == len(told)

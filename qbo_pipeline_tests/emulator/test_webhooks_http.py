"""Webhook deliveries from the emulator to a real HTTP receiver on loopback.

The receiver records every request as it arrived and answers as each test tells it to
(200, another status, or nothing for a while), so what is checked is what an app's
webhook endpoint would see: signed bodies that parse_delivery reads, Intuit's retry
schedule, and order.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from qbo_pipeline import cli
from qbo_pipeline.commands import emulator as emulator_command
from qbo_pipeline.emulator.config import EmulatorConfig
from qbo_pipeline.emulator.webhooks import RETRY_SECONDS
from qbo_pipeline.quickbooks.timestamps import parse_instant
from qbo_pipeline.quickbooks.webhooks import (
    SIGNATURE_HEADER,
    RejectedEvent,
    WebhookEvent,
    parse_delivery,
    signature_matches,
)
from qbo_pipeline_tests.emulator.conftest import Connection, add_company
from qbo_pipeline_tests.emulator.ledger import assert_customer_balances_match

VERIFIER = "emulator-test-verifier-token"
RETRY_SCALE = 0.01  # Intuit's 10 s, 20 s, 30 s become 0.1 s, 0.2 s, 0.3 s
DEADLINE = 10.0


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival
    answer: int | str  # the status answered, or "stall"

    def events(self) -> list[WebhookEvent]:
        parsed = parse_delivery(self.body)
        assert not [e for e in parsed if isinstance(e, RejectedEvent)], parsed
        return [e for e in parsed if isinstance(e, WebhookEvent)]

    @property
    def ids(self) -> list[str]:
        return [event.event_id for event in self.events()]


class Receiver:
    """A webhook endpoint: records requests; answers from `plan`, then 200.

    A plan entry is a status to answer, or ("stall", seconds) to hold the request that
    long before answering 200.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.plan: deque[int | tuple[str, float]] = deque()
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/qbo/webhooks"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                answer = receiver._next_answer()
                headers = {key.lower(): value for key, value in self.headers.items()}
                shown = "stall" if isinstance(answer, tuple) else answer
                receiver._record(Received(body, headers, time.monotonic(), shown))
                if isinstance(answer, tuple):
                    receiver._closing.wait(answer[1])
                    answer = 200
                with contextlib.suppress(OSError):  # the sender may have given up
                    self.send_response(answer)
                    self.send_header("content-length", "0")
                    self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _next_answer(self) -> int | tuple[str, float]:
        with self._changed:
            return self.plan.popleft() if self.plan else 200

    def _record(self, received: Received) -> None:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = DEADLINE
    ) -> list[Received]:
        """The requests so far, once `done` says they are enough; fails at the deadline."""
        with self._changed:
            if not self._changed.wait_for(lambda: done(self.received), timeout):
                pytest.fail(f"the receiver got {len(self.received)} requests, not what was due")
            return list(self.received)

    def events_until(self, done: Callable[[list[WebhookEvent]], bool]) -> list[WebhookEvent]:
        """Every event delivered (first attempts only, in order) once `done` holds."""
        received = self.wait_for(lambda got: done(_first_sends(got)))
        return _first_sends(received)

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


def _first_sends(received: list[Received]) -> list[WebhookEvent]:
    """Events in arrival order, each once however many times its delivery was sent."""
    seen: set[str] = set()
    events: list[WebhookEvent] = []
    for request in received:
        for event in request.events():
            if event.event_id not in seen:
                seen.add(event.event_id)
                events.append(event)
    return events


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def hooked(connected, receiver: Receiver) -> Callable[..., Connection]:
    """Factory: a small emulator sending webhooks to `receiver`, and a connection to it."""

    def _hooked(**config) -> Connection:
        settings = {
            "customers": 6,
            "invoices": 12,
            "webhook_url": receiver.url,
            "webhook_verifier": VERIFIER,
            "webhook_retry_scale": RETRY_SCALE,
            "webhook_batch_seconds": 0.05,
            **config,
        }
        return connected(**settings)

    return _hooked


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _record(qbo: Connection) -> dict:
    return _ok(qbo.http.get("/_emulator/webhooks"))


def _settled(qbo: Connection, deliveries: int) -> dict:
    """The record once `deliveries` are acknowledged and nothing waits to be sent."""
    deadline = time.monotonic() + DEADLINE
    while True:
        record = _record(qbo)
        totals = record["totals"]
        if totals["delivered"] >= deliveries and totals["pending_events"] == 0:
            return record
        if time.monotonic() > deadline:
            pytest.fail(f"deliveries did not settle: {totals}")
        time.sleep(0.02)


def _summary(events: list[WebhookEvent]) -> list[tuple[str, str, str]]:
    return [(event.entity, event.entity_id, event.operation) for event in events]


def _entities(qbo: Connection, entity: str, realm_id: str | None = None) -> dict[str, dict]:
    url = f"/_emulator/companies/{realm_id or qbo.realm_id}/entities/{entity}"
    return {row["Id"]: row for row in _ok(qbo.http.get(url))}


def _invoice_payload(customer_id: str) -> dict:
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": 120.0,
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 2, "UnitPrice": 60},
    }
    return {"CustomerRef": {"value": customer_id}, "Line": [line]}


def _write(qbo: Connection, resource: str, payload: dict, operation: str | None = None) -> dict:
    params = {"operation": operation} if operation else None
    body = _ok(qbo.api("POST", resource, json=payload, params=params))
    return next(value for key, value in body.items() if key != "time")


# Signed deliveries of API writes -------------------------------------------------------------


def test_api_writes_arrive_signed_as_cloudevents_in_order(hooked, receiver: Receiver) -> None:
    qbo = hooked()
    customer = _write(qbo, "customer", {"DisplayName": "Webhook Customer"})
    renamed = _write(
        qbo,
        "customer",
        {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True, "Notes": "x"},
    )
    invoice = _write(qbo, "invoice", _invoice_payload(customer["Id"]))
    _write(qbo, "invoice", {"Id": invoice["Id"], "SyncToken": "0"}, "delete")
    c, i = customer["Id"], invoice["Id"]
    expected = [
        ("customer", c, "created"),
        ("customer", c, "updated"),
        ("invoice", i, "created"),
        ("customer", c, "updated"),  # its balance rose by the invoice
        ("invoice", i, "deleted"),
        ("customer", c, "updated"),  # and fell back
    ]
    events = receiver.events_until(lambda got: len(got) >= len(expected))
    assert _summary(events) == expected
    assert {event.realm_id for event in events} == {qbo.realm_id}
    assert len({event.event_id for event in events}) == len(events)
    assert events[0].occurred_at == parse_instant(customer["MetaData"]["LastUpdatedTime"])
    assert events[1].occurred_at == parse_instant(renamed["MetaData"]["LastUpdatedTime"])
    for request in receiver.received:
        signature = request.headers[SIGNATURE_HEADER]
        assert signature_matches(request.body, signature, VERIFIER)
        assert not signature_matches(request.body, signature, "another-apps-token")
        assert request.headers["content-type"] == "application/cloudevents+json"
    element = httpx.Response(200, content=receiver.received[0].body).json()[0]
    assert element["specversion"] == "1.0" and element["source"] == "intuit.emulator"
    assert element["type"] == "qbo.customer.created.v1" and element["data"] == {}
    assert element["datacontenttype"] == "application/json"
    assert element["time"].endswith("Z") and element["intuitaccountid"] == qbo.realm_id


def test_bursts_and_background_churn_are_reported(hooked, receiver: Receiver) -> None:
    qbo = hooked()
    url = f"/_emulator/companies/{qbo.realm_id}/mutate"
    burst = _ok(qbo.http.post(url, json={"creates": 4, "updates": 3, "deletes": 2, "seed": 3}))
    expected = {(c["entity"].lower(), c["id"], "created") for c in burst["created"]}
    expected |= {(c["entity"].lower(), c["id"], "updated") for c in burst["updated"]}
    expected |= {("invoice", c["id"], "deleted") for c in burst["deleted"]}
    assert len(expected) == 9
    events = receiver.events_until(lambda got: expected <= set(_summary(got)))
    before = len(events)

    _ok(qbo.http.post("/_emulator/churn", json={"rate": 100}))
    receiver.wait_for(lambda got: len(_first_sends(got)) >= before + 10)
    churned = _ok(qbo.http.delete("/_emulator/churn"))["changes"]
    record = _settled(qbo, deliveries=2)
    events = _first_sends(receiver.received)
    assert len(events) - before >= churned > 0  # balance side effects add updates
    assert record["totals"]["events_delivered"] == len(events)


def _top_level(customers: dict[str, dict]) -> set[str]:
    """Active customers that are not jobs: a balance move reaches no parent's."""
    return {c["Id"] for c in customers.values() if c["Active"] and not c.get("ParentRef")}


def test_merge_and_void_are_reported_as_their_own_verbs(hooked, receiver: Receiver) -> None:
    qbo = hooked()
    customers = _entities(qbo, "Customer")
    top = _top_level(customers)
    invoices = _entities(qbo, "Invoice")
    owing = next(i for i in invoices.values() if i["Balance"] and i["CustomerRef"]["value"] in top)
    source = owing["CustomerRef"]["value"]
    into = min(top - {source}, key=int)
    moved = [
        i["Id"]
        for i in sorted(invoices.values(), key=lambda i: int(i["Id"]))
        if i["CustomerRef"]["value"] == source and i["Balance"]
    ]
    merge_url = f"/_emulator/companies/{qbo.realm_id}/merge"
    merged = _ok(
        qbo.http.post(merge_url, json={"entity": "Customer", "from": source, "into": into})
    )
    assert merged["MovedInvoices"] == moved
    after = _entities(qbo, "Customer")
    assert after[source]["Active"] is False and after[source]["Balance"] == 0
    assert int(after[source]["SyncToken"]) == int(customers[source]["SyncToken"]) + 1
    moved_now = _entities(qbo, "Invoice")
    assert all(moved_now[i]["CustomerRef"]["value"] == into for i in moved)

    token = moved_now[owing["Id"]]["SyncToken"]
    voided = _write(qbo, "invoice", {"Id": owing["Id"], "SyncToken": token}, "void")
    assert (voided["TotalAmt"], voided["Balance"], voided["PrivateNote"]) == (0, 0, "Voided")
    assert int(voided["SyncToken"]) == int(token) + 1

    due = len(moved) + 3  # the moved invoices, the merge, the void, the survivor's balance
    events = receiver.events_until(lambda got: len(got) >= due)
    assert _summary(events) == [
        *(("invoice", invoice_id, "updated") for invoice_id in moved),
        ("customer", into, "merged"),
        ("invoice", owing["Id"], "voided"),
        ("customer", into, "updated"),
    ]
    assert events[len(moved)].deleted_id == source
    summary = _ok(qbo.http.get(f"/_emulator/companies/{qbo.realm_id}/summary"))
    assert_customer_balances_match(summary)


def test_admin_edit_refusals_are_one_line(hooked) -> None:
    qbo = hooked()
    merge_url = f"/_emulator/companies/{qbo.realm_id}/merge"
    same = qbo.http.post(merge_url, json={"from": "1", "into": "1"})
    assert same.status_code == 400 and "itself" in same.json()["error"]
    missing = qbo.http.post(merge_url, json={"from": "1", "into": "999"})
    assert missing.status_code == 404
    void_url = f"/_emulator/companies/{qbo.realm_id}/void"
    stale = qbo.http.post(void_url, json={"Id": "1", "SyncToken": "7"})
    assert stale.status_code == 400 and "Stale" in stale.json()["error"]
    customer = qbo.http.post(void_url, json={"entity": "Customer", "Id": "1"})
    assert customer.status_code == 400 and "Void is not supported" in customer.json()["error"]


def test_legacy_format_has_one_notification_per_realm(hooked, receiver: Receiver) -> None:
    qbo = hooked(webhook_format="legacy", webhook_batch_seconds=60)
    other = add_company(qbo.http, "4620816365213457", customers=6, invoices=12)["realm_id"]
    into = min(_top_level(_entities(qbo, "Customer")), key=int)
    created = _write(qbo, "customer", {"DisplayName": "Legacy Customer"})
    top = _top_level(_entities(qbo, "Customer", other))
    owing = next(
        i
        for i in _entities(qbo, "Invoice", other).values()
        if i["Balance"] and i["CustomerRef"]["value"] in top
    )
    _ok(qbo.http.post(f"/_emulator/companies/{other}/void", json={"Id": owing["Id"]}))
    merge_url = f"/_emulator/companies/{qbo.realm_id}/merge"
    _ok(qbo.http.post(merge_url, json={"from": created["Id"], "into": into}))
    assert receiver.received == []  # a minute's window: nothing is sent before the flush
    assert _ok(qbo.http.post("/_emulator/webhooks/flush"))["events"] == 4

    [delivery] = receiver.wait_for(lambda got: len(got) >= 1)
    assert delivery.headers["content-type"] == "application/json"
    assert signature_matches(delivery.body, delivery.headers[SIGNATURE_HEADER], VERIFIER)
    document = httpx.Response(200, content=delivery.body).json()
    assert [n["realmId"] for n in document["eventNotifications"]] == [qbo.realm_id, other]
    first = document["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
    assert (first["name"], first["operation"]) == ("Customer", "Create")
    assert first["lastUpdated"][-5] in "+-" and ":" not in first["lastUpdated"][-5:]
    events = delivery.events()
    assert [(e.realm_id, e.entity, e.entity_id, e.operation) for e in events] == [
        (qbo.realm_id, "customer", created["Id"], "created"),
        (qbo.realm_id, "customer", into, "merged"),
        (other, "invoice", owing["Id"], "voided"),
        (other, "customer", owing["CustomerRef"]["value"], "updated"),
    ]
    assert events[1].deleted_id == created["Id"]


# Failures and retries -----------------------------------------------------------------------


def test_a_failing_receiver_gets_retries_and_later_deliveries_wait(
    hooked, receiver: Receiver
) -> None:
    receiver.plan.extend([500, 503, 500])
    qbo = hooked()
    first = _write(qbo, "customer", {"DisplayName": "Retried Customer"})
    receiver.wait_for(lambda got: len(got) >= 1)
    second = _write(qbo, "customer", {"DisplayName": "Held Customer"})  # while retrying

    got = receiver.wait_for(lambda got: len(got) >= 5)
    attempts, held = got[:4], got[4]
    assert [request.answer for request in got] == [500, 503, 500, 200, 200]
    assert len({request.body for request in attempts}) == 1  # the same delivery, resent
    assert _summary(attempts[0].events()) == [("customer", first["Id"], "created")]
    assert _summary(held.events()) == [("customer", second["Id"], "created")]
    assert held.at >= attempts[3].at
    for request in got:
        assert signature_matches(request.body, request.headers[SIGNATURE_HEADER], VERIFIER)
    for earlier, later, wait in zip(attempts, attempts[1:], RETRY_SECONDS, strict=False):
        gap = later.at - earlier.at
        assert wait * RETRY_SCALE <= gap < wait * RETRY_SCALE + 1.0, (wait, gap)

    record = _settled(qbo, deliveries=2)
    assert record["totals"] == {
        "deliveries": 2,
        "delivered": 2,
        "attempts": 5,
        "failed_attempts": 3,
        "events_delivered": 2,
        "pending_events": 0,
    }
    retried, after = record["deliveries"]
    assert [a["status"] for a in retried["attempts"]] == [500, 503, 500, 200]
    assert [a["attempt"] for a in retried["attempts"]] == [1, 2, 3, 4]
    assert [e["id"] for e in retried["events"]] == attempts[0].ids
    assert retried["state"] == "delivered" and retried["next_attempt_at"] is None
    assert all(a["sent_at"].endswith("Z") and a["duration_ms"] >= 0 for a in retried["attempts"])
    assert [a["status"] for a in after["attempts"]] == [200] and after["id"] > retried["id"]

    cleared = _ok(qbo.http.delete("/_emulator/webhooks"))
    assert cleared["deliveries"] == [] and cleared["totals"]["attempts"] == 0


def test_no_answer_within_three_seconds_is_a_failure(hooked, receiver: Receiver) -> None:
    receiver.plan.append(("stall", 4.0))
    qbo = hooked()
    _write(qbo, "customer", {"DisplayName": "Stalled Customer"})
    stalled, retried = receiver.wait_for(lambda got: len(got) >= 2)
    assert stalled.body == retried.body
    assert 3.0 <= retried.at - stalled.at < 3.0 + 1.0
    [delivery] = _settled(qbo, deliveries=1)["deliveries"]
    timeout, answered = delivery["attempts"]
    assert timeout["status"] is None and "no answer within 3 s" in timeout["error"]
    assert 2900 <= timeout["duration_ms"] < 3500
    assert answered["status"] == 200 and answered["error"] is None


def test_an_unreachable_receiver_is_retried_until_the_url_is_fixed(
    hooked, receiver: Receiver
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}/hooks"
    qbo = hooked(webhook_url=nowhere)
    created = _write(qbo, "customer", {"DisplayName": "Unreachable Customer"})
    deadline = time.monotonic() + DEADLINE
    while not _record(qbo)["totals"]["failed_attempts"] >= 2:
        assert time.monotonic() < deadline, _record(qbo)
        time.sleep(0.02)
    failed = _record(qbo)["deliveries"][0]["attempts"][0]
    assert failed["status"] is None and "Connect" in failed["error"]

    _ok(qbo.http.post("/_emulator/webhooks", json={"url": receiver.url}))
    events = receiver.events_until(lambda got: len(got) >= 1)
    assert _summary(events) == [("customer", created["Id"], "created")]
    assert _settled(qbo, deliveries=1)["url"] == receiver.url


# Off, and the settings ----------------------------------------------------------------------


def test_with_webhooks_off_nothing_is_gathered(connected) -> None:
    qbo = connected(customers=3, invoices=3)
    _write(qbo, "customer", {"DisplayName": "Unwatched Customer"})
    assert qbo.server.state.webhooks is None
    assert qbo.server.state.company.on_change is None
    record = _record(qbo)
    assert record["enabled"] is False and record["totals"]["pending_events"] == 0
    assert qbo.http.post("/_emulator/webhooks/flush").status_code == 409


def test_webhooks_can_be_turned_on_and_off_while_serving(connected, receiver: Receiver) -> None:
    qbo = connected(customers=3, invoices=3)
    refused = qbo.http.post("/_emulator/webhooks", json={"url": receiver.url})
    assert refused.status_code == 400 and "verifier" in refused.json()["error"]
    settings = {"url": receiver.url, "verifier": VERIFIER, "batch_seconds": 0}
    assert _ok(qbo.http.post("/_emulator/webhooks", json=settings))["enabled"] is True
    created = _write(qbo, "customer", {"DisplayName": "Late Subscriber"})
    events = receiver.events_until(lambda got: len(got) >= 1)
    assert _summary(events) == [("customer", created["Id"], "created")]
    assert "verifier" not in _record(qbo)

    assert _ok(qbo.http.post("/_emulator/webhooks", json={"url": None}))["enabled"] is False
    assert qbo.server.state.company.on_change is None


def test_config_and_cli_refuse_a_url_without_a_verifier(monkeypatch, capsys) -> None:
    with pytest.raises(ValueError, match="webhook_verifier"):
        EmulatorConfig(webhook_url="http://127.0.0.1:9/hooks")
    with pytest.raises(ValueError, match="webhook_retry_scale"):
        EmulatorConfig(webhook_retry_scale=0)
    monkeypatch.delenv(emulator_command.VERIFIER_VARIABLE, raising=False)
    assert cli.main(["emulator", "--webhook-url", "http://127.0.0.1:9/hooks"]) == 2
    error = capsys.readouterr().err.strip()
    assert "--webhook-verifier" in error and "\n" not in error

    monkeypatch.setenv(emulator_command.VERIFIER_VARIABLE, "from-the-environment")
    args = cli._parser().parse_args(
        ["emulator", "--webhook-url", "http://127.0.0.1:9/hooks", "--webhook-format", "legacy"]
    )
    config = emulator_command._config(args)
    assert (config.webhook_verifier, config.webhook_format) == ("from-the-environment", "legacy")
    assert (config.webhook_retry_scale, config.webhook_batch_seconds) == (1.0, 0.5)

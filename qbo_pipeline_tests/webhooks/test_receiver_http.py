"""POST /quickbooks/webhooks over HTTP: signed deliveries stored once, before the answer;
everything else refused or kept as rejected, and never a 5xx."""

from __future__ import annotations

import json

import httpx
import pytest

from qbo_pipeline.quickbooks.webhooks import sign
from qbo_pipeline_tests.webhooks.deliveries import Change, cloudevents, deliver, legacy


def test_a_signed_cloudevents_delivery_is_stored_before_the_200(receiving):
    changes = [Change("Customer", "3", "updated"), Change("Invoice", "5", "deleted")]
    answer = deliver(receiving.url, cloudevents(receiving.realm_id, changes))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stored": 2, "duplicates": 0, "rejected": 0}
    assert receiving.counts() == {"pending": 2}
    pending = receiving.runtime.inbox.pending_work()
    assert {(w.realm_id, w.entity, w.events) for w in pending} == {
        (receiving.realm_id, "customer", 1),
        (receiving.realm_id, "invoice", 1),
    }


def test_the_legacy_format_is_accepted_as_plain_json(receiving):
    body = legacy(receiving.realm_id, [Change("Customer", "1", "created")])
    answer = deliver(receiving.url, body, content_type="application/json")
    assert answer.json()["stored"] == 1
    [(_, event)] = receiving.runtime.inbox.pending_events(receiving.realm_id, "customer", 10**9)
    assert (event.entity_id, event.operation) == ("1", "created")


def test_a_redelivered_event_is_stored_once(receiving):
    body = cloudevents(receiving.realm_id, [Change("Customer", "3", "updated")])
    assert deliver(receiving.url, body).json()["stored"] == 1
    assert deliver(receiving.url, body).json() == {"stored": 0, "duplicates": 1, "rejected": 0}
    legacy_body = legacy(receiving.realm_id, [Change("Invoice", "9", "updated")])
    deliver(receiving.url, legacy_body)
    assert deliver(receiving.url, legacy_body).json()["duplicates"] == 1
    assert receiving.counts() == {"pending": 2}


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "bm90IHRoZSBzaWduYXR1cmU=",
        sign(b"another body", "verifier-token-for-tests-0123456789"),
    ],
)
def test_a_missing_or_wrong_signature_is_a_401_and_nothing_is_stored(receiving, signature):
    body = cloudevents(receiving.realm_id, [Change("Customer", "3", "updated")])
    headers = {"content-type": "application/cloudevents+json"}
    if signature is not None:
        headers["intuit-signature"] = signature
    answer = httpx.post(receiving.url, content=body, headers=headers)
    assert answer.status_code == 401
    assert "intuit-signature" in answer.json()["error"]
    assert receiving.counts() == {}


def test_a_delivery_signed_with_another_apps_verifier_is_refused(receiving):
    body = cloudevents(receiving.realm_id, [Change("Customer", "3", "updated")])
    assert deliver(receiving.url, body, verifier="someone-elses-verifier").status_code == 401
    assert receiving.counts() == {}


def test_the_admin_token_is_neither_needed_nor_enough(receiving):
    body = cloudevents(receiving.realm_id, [Change("Customer", "3", "updated")])
    admin = {"Authorization": f"Bearer {receiving.runtime.settings.admin_token}"}
    assert httpx.post(receiving.url, content=body, headers=admin).status_code == 401


def test_a_signed_body_that_is_not_understood_is_kept_as_rejected_and_answered_200(receiving):
    """Intuit retries a whole delivery on a 400, and a retry cannot fix a parse error."""
    for body in (b"not json", json.dumps({"what": "is this"}).encode()):
        answer = deliver(receiving.url, body)
        assert answer.status_code == 200
        assert answer.json()["rejected"] == 1
    assert receiving.counts() == {"rejected": 2}


def test_events_for_companies_not_connected_and_entities_not_synced_are_kept_apart(receiving):
    changes = [Change("Attachable", "4", "created"), Change("Customer", "3", "updated")]
    deliver(receiving.url, cloudevents(receiving.realm_id, changes))
    deliver(receiving.url, cloudevents("4620816365", [Change("Customer", "1", "created")]))
    assert receiving.counts() == {"ignored": 1, "pending": 1, "unconnected": 1}
    [work] = receiving.runtime.inbox.pending_work()
    assert (work.realm_id, work.entity) == (receiving.realm_id, "customer")


def test_an_oversized_body_is_refused_by_its_declared_length_without_a_5xx(receiving):
    body = b"[" + b" " * (3 * 1024 * 1024) + b"]"
    answer = deliver(receiving.url, body)
    assert answer.status_code == 413
    assert receiving.counts() == {}


def test_with_no_verifier_configured_the_receiver_says_how_to_turn_it_on(receiving, monkeypatch):
    from qbo_pipeline.runtime import Runtime
    from qbo_pipeline.service.app import create_app
    from qbo_pipeline.service.server import ServiceServer
    from qbo_pipeline.settings import Settings

    monkeypatch.delenv("QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN")
    runtime = Runtime(Settings.from_env().with_overrides(admin_token="x" * 32))
    server = ServiceServer()
    server.start(create_app(runtime))
    try:
        body = cloudevents(receiving.realm_id, [Change("Customer", "3", "updated")])
        answer = deliver(f"{server.base_url}/quickbooks/webhooks", body)
    finally:
        server.stop()
        runtime.close()
    assert answer.status_code == 503
    assert "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN" in answer.json()["error"]

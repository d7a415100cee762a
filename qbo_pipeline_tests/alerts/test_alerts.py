"""The alert rules as plain values, and webhook delivery against a local receiver."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from qbo_pipeline.alerts import (
    Alert,
    AlertDeliveryFailed,
    AlertKind,
    Severity,
    alerts_from_events,
    deliver,
    expiry_alerts,
    expiry_warning_keys,
)
from qbo_pipeline.vault.events import EventKind, TokenEvent
from qbo_pipeline.vault.store import Connection, ConnectionStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REALM = "9341453050298454"
OTHER = "4620816365"


def event(
    number: int, kind: EventKind, realm: str = REALM, detail: str | None = None
) -> TokenEvent:
    return TokenEvent(number, realm, NOW - timedelta(minutes=10 - number), kind, detail)


def connection(
    realm: str = REALM,
    *,
    refresh_in: timedelta | None = timedelta(days=100),
    hard_in: timedelta | None = None,
    status: ConnectionStatus = ConnectionStatus.ACTIVE,
) -> Connection:
    return Connection(
        id=1,
        realm_id=realm,
        organization_id=None,
        status=status,
        key_id="k1",
        expires_at=NOW + timedelta(hours=1),
        refresh_expires_at=NOW + refresh_in if refresh_in is not None else None,
        refresh_hard_expires_at=NOW + hard_in if hard_in is not None else None,
        last_refresh_at=NOW,
        last_error=None,
        created_at=NOW,
        updated_at=NOW,
    )


# --- events -------------------------------------------------------------------------------


def test_invalid_grant_says_which_company_what_happened_and_how_to_reconnect():
    [alert] = alerts_from_events(
        [event(1, EventKind.CONNECTED), event(2, EventKind.INVALID_GRANT, detail="Incorrect token")]
    )
    assert (alert.realm_id, alert.kind, alert.severity) == (
        REALM,
        AlertKind.INVALID_GRANT,
        Severity.ERROR,
    )
    assert REALM in alert.text
    assert "invalid_grant" in alert.text
    assert "Incorrect token" in alert.text
    assert f"qbo-pipeline auth authorize --realm {REALM}" in alert.text
    assert "/quickbooks/auth/authorize" in alert.text


def test_repeated_refresh_failures_of_a_realm_are_one_alert_per_realm():
    alerts = alerts_from_events(
        [
            event(1, EventKind.REFRESH_FAILED, detail="HTTP 503"),
            event(2, EventKind.REFRESH_FAILED, detail="HTTP 503"),
            event(3, EventKind.REFRESH_FAILED, OTHER, detail="ReadTimeout"),
            event(4, EventKind.REFRESH_FAILED, detail="HTTP 502"),
        ]
    )
    assert [(a.realm_id, a.kind) for a in alerts] == [
        (REALM, AlertKind.REFRESH_FAILED),
        (OTHER, AlertKind.REFRESH_FAILED),
    ]
    assert "3 times" in alerts[0].text
    assert "HTTP 502" in alerts[0].text  # the latest failure
    assert "times" not in alerts[1].text


def test_routine_events_and_problems_already_recovered_raise_nothing():
    routine = [
        event(1, EventKind.CONNECTED),
        event(2, EventKind.REFRESHED),
        event(3, EventKind.KEY_ROTATED),
    ]
    recovered = [event(4, EventKind.REFRESH_FAILED), event(5, EventKind.REFRESHED)]
    reconnected = [event(6, EventKind.INVALID_GRANT, OTHER), event(7, EventKind.CONNECTED, OTHER)]
    assert alerts_from_events(routine + recovered + reconnected) == []


def test_a_revoked_connection_is_alerted_with_the_reconnect_hint():
    [alert] = alerts_from_events([event(1, EventKind.REVOKED, detail="revoked")])
    assert alert.kind is AlertKind.REVOKED
    assert "disconnected" in alert.summary
    assert f"--realm {REALM}" in alert.action


def test_events_before_since_are_not_alerted():
    old = TokenEvent(1, REALM, NOW - timedelta(days=30), EventKind.INVALID_GRANT, None)
    new = TokenEvent(2, OTHER, NOW, EventKind.INVALID_GRANT, None)
    alerts = alerts_from_events([old, new], since=NOW - timedelta(days=1))
    assert [a.realm_id for a in alerts] == [OTHER]


# --- expiry -------------------------------------------------------------------------------


def test_rolling_expiry_within_the_warning_days_warns_once():
    soon = connection(refresh_in=timedelta(days=3, hours=2))
    later = connection(OTHER, refresh_in=timedelta(days=30))
    [alert] = expiry_alerts([soon, later], NOW, 14, {})
    assert (alert.realm_id, alert.kind, alert.severity) == (
        REALM,
        AlertKind.REFRESH_EXPIRING,
        Severity.WARNING,
    )
    assert "in 3 days" in alert.summary
    assert f"qbo-pipeline sync --realm {REALM}" in alert.action

    warned = expiry_warning_keys([soon, later], NOW, 14)
    assert expiry_alerts([soon, later], NOW + timedelta(minutes=1), 14, warned) == []
    assert expiry_alerts([soon, later], NOW, 2, {}) == []  # the window is settable


def test_hard_expiry_warns_and_asks_for_a_reconnect():
    [alert] = expiry_alerts([connection(hard_in=timedelta(days=5))], NOW, 14, {})
    assert alert.kind is AlertKind.HARD_EXPIRING
    assert "maximum lifetime in 5 days" in alert.summary
    assert f"qbo-pipeline auth authorize --realm {REALM}" in alert.action


def test_an_expiry_that_moved_is_warned_about_again():
    before = connection(refresh_in=timedelta(days=3))
    warned = expiry_warning_keys([before], NOW, 14)
    refreshed_then_idle = connection(refresh_in=timedelta(days=2))
    assert len(expiry_alerts([refreshed_then_idle], NOW, 14, warned)) == 1


def test_an_expiry_recomputed_to_the_second_is_not_a_new_expiry():
    """Each refresh once recomputed the hard expiry from its own receipt time, moving it by
    the answer's second and a fraction, and alerted again for the same 5-year limit."""
    base = NOW + timedelta(days=5, seconds=10)

    def expiring(at):
        return replace(connection(), refresh_hard_expires_at=at)

    warned = expiry_warning_keys([expiring(base)], NOW, 14)
    for drift in (timedelta(seconds=1.7), timedelta(microseconds=3), -timedelta(seconds=2)):
        assert expiry_alerts([expiring(base + drift)], NOW, 14, warned) == [], drift
    assert len(expiry_alerts([expiring(base + timedelta(minutes=1))], NOW, 14, warned)) == 1


def test_expired_tokens_are_errors_and_broken_connections_get_no_expiry_warning():
    [expired] = expiry_alerts([connection(refresh_in=-timedelta(hours=1))], NOW, 14, {})
    assert expired.severity is Severity.ERROR
    assert "expired at" in expired.summary
    needs_reauth = connection(refresh_in=timedelta(days=1), status=ConnectionStatus.NEEDS_REAUTH)
    assert expiry_alerts([needs_reauth], NOW, 14, {}) == []
    assert expiry_warning_keys([needs_reauth], NOW, 14) == {}


# --- delivery -----------------------------------------------------------------------------

ALERT = Alert(REALM, AlertKind.INVALID_GRANT, Severity.ERROR, "Intuit said no.", "Reconnect.")


def test_delivery_posts_slack_compatible_json(receiver):
    deliver(ALERT, receiver.url)
    [body] = receiver.delivered
    assert body["text"] == ALERT.text
    assert {block["type"] for block in body["blocks"]} == {"header", "section"}
    assert receiver.requests[0].path == receiver.secret_path


def test_a_failing_webhook_is_retried_and_the_alert_delivered_once(receiver):
    receiver.statuses = [500, 503]
    deliver(ALERT, receiver.url)
    assert [r.status for r in receiver.requests] == [500, 503, 200]
    assert len(receiver.delivered) == 1


def test_a_rejected_payload_is_not_retried_and_the_error_hides_the_url(receiver):
    receiver.statuses = [400]
    with pytest.raises(AlertDeliveryFailed) as failure:
        deliver(ALERT, receiver.url)
    assert len(receiver.requests) == 1
    assert "HTTP 400" in str(failure.value)
    assert receiver.secret_path not in str(failure.value)
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_an_unreachable_webhook_fails_within_a_bounded_time_without_the_url(unreachable_url):
    started = time.monotonic()
    with pytest.raises(AlertDeliveryFailed) as failure:
        deliver(ALERT, unreachable_url)
    assert time.monotonic() - started < 10
    assert "ConnectError" in str(failure.value)
    assert "127.0.0.1" not in str(failure.value)
    assert REALM in str(failure.value)


def test_httpx_request_logs_do_not_show_the_webhook_url(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    deliver(ALERT, receiver.url)
    assert "HTTP Request: POST" in caplog.text
    assert receiver.secret_path not in caplog.text
    httpx.get(receiver.base_url + "/other")  # other requests keep their URLs in the log
    assert "/other" in caplog.text

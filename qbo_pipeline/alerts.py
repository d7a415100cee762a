"""Token-health alerts: what to tell an operator about a connection, and posting it to a webhook.

The functional core (`alerts_from_events`, `expiry_alerts`, `expiry_warning_keys`) turns
token events and connection rows into `Alert` values and touches nothing else, so the
rules are tested with plain values. `deliver` is the only I/O: one Slack-compatible JSON
POST, retried a few times within a bounded time, because a Dagster sensor that waits on a
dead webhook past its 60 s budget stops alerting altogether.

The webhook URL is a secret (anyone holding a Slack incoming-webhook URL can post to the
channel), so it never appears in an exception, a log line or an alert.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from qbo_pipeline.errors import PipelineError, is_transient
from qbo_pipeline.vault.errors import AUTHORIZE_PATH
from qbo_pipeline.vault.events import EventKind, TokenEvent
from qbo_pipeline.vault.store import Connection, ConnectionStatus

DELIVERY_TIMEOUT_SECONDS = 5.0
DELIVERY_ATTEMPTS = 3
_DETAIL_LIMIT = 300


class AlertKind(StrEnum):
    INVALID_GRANT = "invalid_grant"
    REFRESH_FAILED = "refresh_failed"
    REVOKED = "revoked"
    REFRESH_EXPIRING = "refresh_expiring"
    HARD_EXPIRING = "hard_expiring"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Alert:
    """One thing an operator must know about one company, and what they should do."""

    realm_id: str
    kind: AlertKind
    severity: Severity
    summary: str
    action: str

    @property
    def title(self) -> str:
        label = "problem" if self.severity is Severity.ERROR else "warning"
        return f"QuickBooks connection {label}: company realm {self.realm_id} ({self.kind.value})"

    @property
    def instruction(self) -> str:
        return self.action[:1].upper() + self.action[1:]

    @property
    def text(self) -> str:
        """The whole alert in one paragraph: the Dagster log line and the chat fallback."""
        return f"{self.title}. {self.summary} What to do: {self.instruction}"

    def slack_payload(self) -> dict:
        """Slack's incoming-webhook shape; `text` alone is enough for Mattermost, Teams etc."""
        return {
            "text": self.text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": self.summary}},
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*What to do:* {self.instruction}"},
                },
            ],
        }


class AlertDeliveryFailed(PipelineError):
    """The webhook did not accept an alert; the message is one line and never holds the URL."""


def reconnect_action(realm_id: str) -> str:
    return (
        f"reconnect the company: run `qbo-pipeline auth authorize --realm {realm_id}`, or open "
        f"{AUTHORIZE_PATH} on the pipeline's service, and sign in as an admin of the "
        "QuickBooks company."
    )


# --- alerts from token events -------------------------------------------------------------

_EVENT_ALERTS = {
    EventKind.INVALID_GRANT: AlertKind.INVALID_GRANT,
    EventKind.REFRESH_FAILED: AlertKind.REFRESH_FAILED,
    EventKind.REVOKED: AlertKind.REVOKED,
}
# A later success for the same realm means the problem is already gone by the time we look.
_RECOVERIES = {EventKind.CONNECTED, EventKind.REFRESHED}


def alerts_from_events(
    events: Sequence[TokenEvent], *, since: datetime | None = None
) -> list[Alert]:
    """One alert per realm and kind of problem among `events` (oldest first).

    Problems a later refresh or reconnect of the same realm already resolved are left out,
    and so are events before `since` (a first tick should not replay months of history).
    """
    recovered_at = {e.realm_id: e.id for e in events if e.kind in _RECOVERIES}
    problems: dict[tuple[str, AlertKind], list[TokenEvent]] = {}
    for event in events:
        kind = _EVENT_ALERTS.get(event.kind)
        if kind is None or event.id < recovered_at.get(event.realm_id, 0):
            continue
        if since is not None and event.occurred_at < since:
            continue
        problems.setdefault((event.realm_id, kind), []).append(event)
    return [_event_alert(realm, kind, group) for (realm, kind), group in problems.items()]


def _event_alert(realm_id: str, kind: AlertKind, events: list[TokenEvent]) -> Alert:
    latest = events[-1]
    when = latest.occurred_at.isoformat(timespec="seconds")
    times = f" ({len(events)} times since the last check)" if len(events) > 1 else ""
    detail = _clip(latest.detail)
    details = f" Detail: {detail}." if detail else ""
    if kind is AlertKind.INVALID_GRANT:
        return Alert(
            realm_id,
            kind,
            Severity.ERROR,
            f"Intuit rejected the refresh token with invalid_grant at {when}: the authorization "
            f"was revoked or has expired, so every sync of this company fails until it is "
            f"reconnected; the pipeline will not call Intuit for it again.{details}",
            reconnect_action(realm_id),
        )
    if kind is AlertKind.REVOKED:
        return Alert(
            realm_id,
            kind,
            Severity.ERROR,
            f"The app was disconnected from this company at {when}; its syncs stop.{details}",
            f"if that was not intended, {reconnect_action(realm_id)}",
        )
    return Alert(
        realm_id,
        kind,
        Severity.ERROR,
        f"Refreshing the access token failed at {when}{times}; syncs of this company fail "
        f"until a refresh succeeds.{details}",
        "usually temporary (Intuit's token endpoint or the network) and the next run retries; "
        "if it keeps failing check QUICKBOOKS_CLIENT_ID / QUICKBOOKS_CLIENT_SECRET and "
        "https://status.developer.intuit.com, then run "
        f"`qbo-pipeline sync --realm {realm_id}`.",
    )


def _clip(detail: str | None) -> str:
    if not detail:
        return ""
    detail = detail.strip().rstrip(".")
    return detail if len(detail) <= _DETAIL_LIMIT else detail[: _DETAIL_LIMIT - 1] + "…"


# --- expiry warnings ----------------------------------------------------------------------


def expiry_warning_keys(
    connections: Iterable[Connection], now: datetime, days: int
) -> dict[str, str]:
    """The warnings due now, as {"realm:kind": expiry instant}: the sensor's memory of them.

    Keyed by the expiry instant too, so a connection whose expiry moved (it was refreshed
    or reconnected) and later comes close again is warned about again; to the minute, so
    the seconds an answer from Intuit takes to arrive do not count as a move.
    """
    return {
        _warning_key(c.realm_id, kind): _to_the_minute(at)
        for c, kind, at in _due(connections, now, days)
    }


def expiry_alerts(
    connections: Iterable[Connection],
    now: datetime,
    days: int,
    already_warned: Mapping[str, str],
) -> list[Alert]:
    """Warnings for refresh tokens expiring within `days`, minus those already given."""
    return [
        _expiry_alert(connection.realm_id, kind, at, now)
        for connection, kind, at in _due(connections, now, days)
        if already_warned.get(_warning_key(connection.realm_id, kind)) != _to_the_minute(at)
    ]


def _due(
    connections: Iterable[Connection], now: datetime, days: int
) -> Iterator[tuple[Connection, AlertKind, datetime]]:
    horizon = now + timedelta(days=days)
    for connection in connections:
        # A broken connection has had its own alert; its expiry no longer matters.
        if connection.status is not ConnectionStatus.ACTIVE:
            continue
        for kind, at in (
            (AlertKind.REFRESH_EXPIRING, connection.refresh_expires_at),
            (AlertKind.HARD_EXPIRING, connection.refresh_hard_expires_at),
        ):
            if at is not None and at <= horizon:
                yield connection, kind, at


def _to_the_minute(instant: datetime) -> str:
    return instant.replace(second=0, microsecond=0).isoformat()


def _warning_key(realm_id: str, kind: AlertKind) -> str:
    return f"{realm_id}:{kind.value}"


def _expiry_alert(realm_id: str, kind: AlertKind, at: datetime, now: datetime) -> Alert:
    expired = at <= now
    severity = Severity.ERROR if expired else Severity.WARNING
    when = f"at {at.isoformat(timespec='minutes')}" if expired else _in_days(at, now)
    if kind is AlertKind.HARD_EXPIRING:
        return Alert(
            realm_id,
            kind,
            severity,
            f"The refresh token {'reached' if expired else 'reaches'} its maximum lifetime "
            f"{when}: refreshing cannot extend that, so syncs of this company stop then.",
            f"before then, {reconnect_action(realm_id)}",
        )
    return Alert(
        realm_id,
        kind,
        severity,
        f"The refresh token {'expired' if expired else 'expires'} {when}. Every refresh "
        "renews it, so this company has not been synced for a long time; once it has "
        "expired, only reconnecting helps.",
        f"run `qbo-pipeline sync --realm {realm_id}` (or its qbo_sync partition) now to renew "
        f"it; if that fails, {reconnect_action(realm_id)}",
    )


def _in_days(at: datetime, now: datetime) -> str:
    days = round((at - now).total_seconds() / 86400)
    span = "less than a day" if at - now < timedelta(days=1) else f"{days} day{'s' * (days > 1)}"
    return f"in {span} (at {at.isoformat(timespec='minutes')})"


# --- delivery -----------------------------------------------------------------------------


class _RetryableDelivery(PipelineError):
    """The webhook answered 5xx or 429, or could not be reached: worth another try."""

    transient = True

    def __init__(self, status: int | None = None) -> None:
        self.status = status
        super().__init__(f"HTTP {status}" if status else "unreachable")


def deliver(alert: Alert, webhook_url: str, http: httpx.Client | None = None) -> None:
    """POST the alert to a Slack-compatible webhook, retrying 5xx, 429 and network errors.

    At most `DELIVERY_ATTEMPTS` attempts of `DELIVERY_TIMEOUT_SECONDS` each, about 1.5 s of
    waiting between them: a bounded cost inside a sensor tick. 4xx other than 429 means
    the URL or the payload is wrong and is not retried.
    """
    client = http or httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS)
    try:
        for attempt in Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(DELIVERY_ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=2),
            reraise=True,
        ):
            with attempt:
                _post(client, webhook_url, alert.slack_payload())
    except _RetryableDelivery as error:
        reason = f"HTTP {error.status}" if error.status else type(error.__cause__).__name__
        raise AlertDeliveryFailed(_failure(alert, reason)) from None
    except httpx.HTTPStatusError as error:
        raise AlertDeliveryFailed(_failure(alert, f"HTTP {error.response.status_code}")) from None
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        # httpx messages can quote the URL; the class name says enough (timeout, refused...).
        raise AlertDeliveryFailed(_failure(alert, type(error).__name__)) from None
    finally:
        if http is None:
            client.close()


def _post(client: httpx.Client, webhook_url: str, payload: dict) -> None:
    with _url_hidden_from_httpx_log():
        try:
            response = client.post(webhook_url, json=payload, follow_redirects=False)
        except httpx.TransportError as error:
            raise _RetryableDelivery() from error
    if response.status_code >= 500 or response.status_code == 429:
        raise _RetryableDelivery(response.status_code)
    if response.status_code >= 300:
        raise httpx.HTTPStatusError("rejected", request=response.request, response=response)


def _failure(alert: Alert, reason: str) -> str:
    return (
        f"the {alert.kind.value} alert for realm {alert.realm_id} was not delivered to "
        f"QBO_ALERT_WEBHOOK_URL: {reason}"
    )


# httpx logs every request's full URL at INFO; for the webhook that would put the secret in
# the logs of whoever enables them, so its records are rewritten while we post.
_posting_alert = contextvars.ContextVar("posting_alert", default=False)


class _HideWebhookUrl(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _posting_alert.get() and isinstance(record.args, tuple):
            record.args = tuple(
                "<QBO_ALERT_WEBHOOK_URL>" if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


logging.getLogger("httpx").addFilter(_HideWebhookUrl())


@contextmanager
def _url_hidden_from_httpx_log() -> Iterator[None]:
    token = _posting_alert.set(True)
    try:
        yield
    finally:
        _posting_alert.reset(token)

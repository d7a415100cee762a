"""Webhook deliveries as Intuit sends them: batched, signed, retried, in order.

Every write to a company reports a `Change` (Company.on_change); the dispatcher gathers
them and, a batch window after the first, sends up to 1000 as one delivery in the
configured format, signed with the app's verifier token (`intuit-signature`). Only a 200
within 3 seconds acknowledges a delivery; any other answer, a timeout or a connection
error is retried on Intuit's schedule (scaled for tests) with the same bytes, so the same
event ids. Deliveries go out one at a time: while one is being retried, later changes
wait, as Intuit holds an app's later events until the first is acknowledged.

Everything lives in memory: the gathered changes and the record of every attempt that
`GET /_emulator/webhooks` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from qbo_pipeline.emulator.company import (
    CREATED,
    DELETED,
    MERGED,
    UPDATED,
    VOIDED,
    Change,
    encode,
)
from qbo_pipeline.emulator.config import EmulatorConfig, check_webhooks
from qbo_pipeline.quickbooks.timestamps import PACIFIC
from qbo_pipeline.quickbooks.webhooks import SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

ANSWER_SECONDS = 3.0  # Intuit counts a delivery unanswered after this
MAX_EVENTS = 1000  # events in one delivery
# Waits before each retry of a failed delivery; after the last, every 6 h.
RETRY_SECONDS = (10, 20, 30, 300, 1200, 7200, 14400, 21600)
RECORD_LIMIT = 1000  # deliveries kept in the record; the totals count the older ones too
TOTALS = ("deliveries", "delivered", "attempts", "failed_attempts", "events_delivered")
SOURCE = "intuit.emulator"
USER_AGENT = "qbo-pipeline-emulator webhooks"
_LEGACY_OPERATIONS = {
    CREATED: "Create",
    UPDATED: "Update",
    DELETED: "Delete",
    MERGED: "Merge",
    VOIDED: "Void",
}
_CONTENT_TYPES = {"cloudevents": "application/cloudevents+json", "legacy": "application/json"}


@dataclass(frozen=True)
class WebhookSettings:
    """Where deliveries go and how; validated as EmulatorConfig's fields are."""

    url: str
    verifier: str
    format: str = "cloudevents"
    retry_scale: float = 1.0
    batch_seconds: float = 0.5

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("webhook_url is required to send webhooks")
        check_webhooks(self.url, self.format, self.verifier, self.retry_scale, self.batch_seconds)

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> WebhookSettings | None:
        if config.webhook_url is None:
            return None
        return cls(
            url=config.webhook_url,
            verifier=config.webhook_verifier or "",
            format=config.webhook_format,
            retry_scale=config.webhook_retry_scale,
            batch_seconds=config.webhook_batch_seconds,
        )

    def changed(self, updates: dict[str, Any]) -> WebhookSettings:
        """These settings with some replaced; ValueError names a bad one."""
        return replace(self, **updates)

    def as_json(self) -> dict[str, Any]:
        """The settings without the verifier, which is a secret of the app."""
        return {
            "url": self.url,
            "format": self.format,
            "retry_scale": self.retry_scale,
            "batch_seconds": self.batch_seconds,
        }


@dataclass(frozen=True)
class Event:
    id: str  # CloudEvents `id`: a retry resends it unchanged
    change: Change
    gathered_at: float  # time.monotonic()

    def as_json(self) -> dict[str, Any]:
        change = self.change
        return {
            "id": self.id,
            "realm_id": change.realm_id,
            "entity": change.entity,
            "entity_id": change.entity_id,
            "operation": change.operation,
            "deleted_id": change.deleted_id,
            "time": _utc(change.stamp),
        }


@dataclass(frozen=True)
class Attempt:
    number: int
    sent_at: datetime
    duration: float  # seconds
    status: int | None  # the receiver's answer; None when there was none
    error: str | None  # why there was no answer

    @property
    def ok(self) -> bool:
        return self.status == 200

    def as_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "status": self.status,
            "error": self.error,
            "ok": self.ok,
            "sent_at": _utc(self.sent_at),
            "duration_ms": round(self.duration * 1000, 3),
        }


@dataclass
class Delivery:
    id: int
    events: list[Event]
    body: bytes
    content_type: str
    attempts: list[Attempt] = field(default_factory=list)
    delivered: bool = False
    next_attempt_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        state = "delivered" if self.delivered else "retrying" if self.attempts else "sending"
        return {
            "id": self.id,
            "state": state,
            "event_count": len(self.events),
            "events": [event.as_json() for event in self.events],
            "attempts": [attempt.as_json() for attempt in self.attempts],
            "next_attempt_at": _utc(self.next_attempt_at) if self.next_attempt_at else None,
        }


def retry_delay(failures: int, scale: float = 1.0) -> float:
    """Seconds to wait after a delivery's `failures`-th failed attempt."""
    return RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1] * scale


def delivery_body(events: Iterable[Event], form: str) -> tuple[bytes, str]:
    """The body and Content-Type of a delivery of `events` in `form`."""
    events = list(events)
    if form == "legacy":
        return legacy_body(events), _CONTENT_TYPES[form]
    return cloudevents_body(events), _CONTENT_TYPES["cloudevents"]


def cloudevents_body(events: list[Event]) -> bytes:
    return encode([_cloudevent(event) for event in events])


def _cloudevent(event: Event) -> dict[str, Any]:
    change = event.change
    data = {"deletedid": change.deleted_id} if change.deleted_id else {}
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": SOURCE,
        "type": f"qbo.{change.entity.lower()}.{change.operation}.v1",
        "datacontenttype": "application/json",
        "time": _utc(change.stamp),
        "intuitentityid": change.entity_id,
        "intuitaccountid": change.realm_id,
        "data": data,
    }


def legacy_body(events: list[Event]) -> bytes:
    """One eventNotification per realm, in the order each realm first changed."""
    by_realm: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_realm.setdefault(event.change.realm_id, []).append(_legacy_entity(event.change))
    notifications = [
        {"realmId": realm_id, "dataChangeEvent": {"entities": entities}}
        for realm_id, entities in by_realm.items()
    ]
    return encode({"eventNotifications": notifications})


def _legacy_entity(change: Change) -> dict[str, Any]:
    entity = {
        "name": change.entity,
        "id": change.entity_id,
        "operation": _LEGACY_OPERATIONS[change.operation],
        "lastUpdated": change.stamp.astimezone(PACIFIC).strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if change.deleted_id:
        entity["deletedId"] = change.deleted_id
    return entity


def _utc(instant: datetime) -> str:
    """CloudEvents' time form: UTC with milliseconds and a Z."""
    text = instant.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class WebhookDispatcher:
    """Gathers changes and delivers them to one URL, as one Intuit app's subscription."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.pending: list[Event] = []  # gathered, in no delivery yet
        self.current: Delivery | None = None  # being sent or awaiting a retry
        self.record: deque[Delivery] = deque(maxlen=RECORD_LIMIT)
        self.totals: Counter[str] = Counter()
        self.task: asyncio.Task[None] | None = None
        self._next_id = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._hurry = False

    # Gathering (Company.on_change) ----------------------------------------------------------

    def gather(self, change: Change) -> None:
        """The change hook: cheap, and safe to call from any thread."""
        self.pending.append(Event(str(uuid.uuid4()), change, time.monotonic()))
        self._poke()

    def flush(self) -> int:
        """End the batch window, or the wait before a retry, now; the events this hurries."""
        waiting = len(self.pending) + (len(self.current.events) if self.current else 0)
        if waiting:
            self._hurry = True
            self._poke()
        return waiting

    def _poke(self) -> None:
        loop = self._loop
        if loop is None:  # not running yet: run() looks at `pending` first
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # Delivering -----------------------------------------------------------------------------

    def start(self) -> None:
        """Deliver from a task on the running loop until `stop`."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())
            self.task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        task, self.task, self._loop = self.task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=ANSWER_SECONDS) as client:
            while True:
                await self._batch_window()
                await self._deliver(client, self._next_delivery())

    async def _batch_window(self) -> None:
        """Until a change is gathered, then `batch_seconds` after it (or a flush)."""
        while not self.pending:
            await self._wait(None)
        await self._until(self.pending[0].gathered_at + self.settings.batch_seconds)

    def _next_delivery(self) -> Delivery:
        events = self.pending[:MAX_EVENTS]
        del self.pending[: len(events)]  # appends meanwhile land after the slice
        body, content_type = delivery_body(events, self.settings.format)
        delivery = Delivery(self._next_id, events, body, content_type)
        self._next_id += 1
        self.current = delivery
        self.record.append(delivery)
        self.totals["deliveries"] += 1
        return delivery

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        """Send until the receiver answers 200; nothing later goes out meanwhile."""
        while True:
            attempt = await self._attempt(client, delivery)
            delivery.attempts.append(attempt)
            self.totals["attempts"] += 1
            if attempt.ok:
                break
            self.totals["failed_attempts"] += 1
            wait = retry_delay(len(delivery.attempts), self.settings.retry_scale)
            log.warning(
                "webhook delivery %d, attempt %d: %s; retrying in %.3g s",
                delivery.id,
                attempt.number,
                attempt.error or f"answered {attempt.status}",
                wait,
            )
            delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=wait)
            await self._until(time.monotonic() + wait)
            delivery.next_attempt_at = None
        delivery.delivered = True
        self.current = None
        self.totals["delivered"] += 1
        self.totals["events_delivered"] += len(delivery.events)

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> Attempt:
        settings = self.settings
        headers = {
            SIGNATURE_HEADER: sign(delivery.body, settings.verifier),
            "content-type": delivery.content_type,
            "user-agent": USER_AGENT,
        }
        sent_at, started = datetime.now(UTC), time.monotonic()
        status, error = None, None
        try:
            async with asyncio.timeout(ANSWER_SECONDS):  # for the whole exchange, not each read
                response = await client.post(settings.url, content=delivery.body, headers=headers)
            status = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            error = f"no answer within {ANSWER_SECONDS:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        number = len(delivery.attempts) + 1
        return Attempt(number, sent_at, time.monotonic() - started, status, error)

    async def _until(self, deadline: float) -> None:
        """Sleep until `deadline` (time.monotonic()) unless a flush comes first."""
        while not self._hurry and (remaining := deadline - time.monotonic()) > 0:
            await self._wait(remaining)
        self._hurry = False

    async def _wait(self, seconds: float | None) -> None:
        """Until poked (a change, a flush, new settings) or `seconds` pass."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # Reading and clearing the record --------------------------------------------------------

    def reconfigure(self, settings: WebhookSettings) -> None:
        """New settings for the next attempt; a delivery being retried keeps its body, and
        is retried at once if the URL changed, as a user fixing the URL expects."""
        moved = settings.url != self.settings.url
        self.settings = settings
        if moved:
            self.flush()
        self._poke()

    def clear(self) -> None:
        """Forget finished deliveries and the totals; what is still to send stays."""
        self.record = deque((d for d in self.record if not d.delivered), maxlen=RECORD_LIMIT)
        self.totals = Counter()

    def as_json(self) -> dict[str, Any]:
        in_flight = len(self.current.events) if self.current else 0
        return {
            "enabled": True,
            **self.settings.as_json(),
            "totals": {
                **{name: self.totals[name] for name in TOTALS},
                "pending_events": len(self.pending) + in_flight,
            },
            "deliveries": [delivery.as_json() for delivery in self.record],
        }


def _report_crash(task: asyncio.Task[None]) -> None:
    """A dispatcher that died would stop deliveries silently; say why in the log."""
    if not task.cancelled() and task.exception() is not None:
        log.error("webhook deliveries stopped", exc_info=task.exception())


def disabled_json() -> dict[str, Any]:
    """What /_emulator/webhooks shows when no URL is set: nothing gathered, nothing sent."""
    totals = dict.fromkeys((*TOTALS, "pending_events"), 0)
    return {"enabled": False, "url": None, "totals": totals, "deliveries": []}

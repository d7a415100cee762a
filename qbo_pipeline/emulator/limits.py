"""QBO's per-realm limits, as the emulator enforces them (QBO_API.md §3).

Intuit meters each realm: 500 requests in any 60 s, 10 in any second, 10 in flight; /batch
also 40 batch requests a minute per realm and app and 120 per realm, and each of a
batch's items counts as a request. How batch items meet the per-second limit is
UNCONFIRMED: were each one a request there, the documented batch of 30 could never pass,
so a batch takes at most a whole second's worth (the client's limiter charges the same).

Windows run on the emulator's clock so that a test can advance it instead of waiting a
minute, and they are measured even with the limits off, so the stats show the peaks a
client reached. The event loop is the only writer, but admission is still taken under an
asyncio lock so that the check and the increment stay one step even if a later change
puts an await between them.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qbo_pipeline.emulator.config import EmulatorConfig

MINUTE = 60.0
SECOND = 1.0
# Why a request was throttled: the 60 s window, the 1 s window, in flight, the batch windows.
REASONS = ("rate", "second", "concurrency", "batch")


@dataclass(frozen=True)
class Rejection:
    """Why a request was throttled and when the client may try again."""

    reason: str  # one of REASONS
    retry_after: int  # whole seconds until the request would be admitted


@dataclass
class Window:
    """Admitted request times within the last `seconds`, and the most it ever held."""

    seconds: float
    stamps: deque[float] = field(default_factory=deque)
    peak: int = 0

    def held(self, now: float) -> int:
        horizon = now - self.seconds
        while self.stamps and self.stamps[0] <= horizon:
            self.stamps.popleft()
        return len(self.stamps)

    def wait(self, now: float, count: int, limit: int) -> float | None:
        """Seconds until `count` more fit under `limit`; None when they fit now.

        More than a whole window takes all of it: it waits for the window to empty.
        """
        excess = self.held(now) + min(count, limit) - limit
        if excess <= 0:
            return None
        return self.stamps[excess - 1] + self.seconds - now

    def add(self, now: float, count: int) -> None:
        self.stamps.extend([now] * count)
        self.peak = max(self.peak, len(self.stamps))


@dataclass
class RealmMeter:
    """One realm's windows, its requests in flight and its throttles by reason."""

    minute: Window = field(default_factory=lambda: Window(MINUTE))
    second: Window = field(default_factory=lambda: Window(SECOND))
    batches: Window = field(default_factory=lambda: Window(MINUTE))  # every app's
    app_batches: dict[str, Window] = field(default_factory=dict)  # by client id
    in_flight: int = 0
    peak_in_flight: int = 0
    throttled: Counter[str] = field(default_factory=Counter)

    def app_window(self, app: str) -> Window:
        return self.app_batches.setdefault(app, Window(MINUTE))

    def reset(self) -> None:
        """Peaks start again from now; the windows themselves keep their requests."""
        self.peak_in_flight = self.in_flight
        for window in (self.minute, self.second, self.batches, *self.app_batches.values()):
            window.peak = 0
        self.throttled.clear()

    def report(self) -> dict:
        return {
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "peak_per_second": self.second.peak,
            "peak_per_minute": self.minute.peak,
            "peak_batches_per_minute": self.batches.peak,
            "throttled_by_reason": {reason: self.throttled[reason] for reason in REASONS},
        }


class Limits:
    """Admission control for every realm; the numbers can change while serving."""

    def __init__(
        self,
        enabled: bool = True,
        requests_per_minute: int = 500,
        max_in_flight: int = 10,
        requests_per_second: int = 10,
        batch_requests_per_minute: int = 40,
        realm_batch_requests_per_minute: int = 120,
    ) -> None:
        self.enabled = enabled
        self.requests_per_minute = requests_per_minute
        self.max_in_flight = max_in_flight
        self.requests_per_second = requests_per_second
        self.batch_requests_per_minute = batch_requests_per_minute
        self.realm_batch_requests_per_minute = realm_batch_requests_per_minute
        self.meters: dict[str, RealmMeter] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> Limits:
        return cls(
            enabled=config.limits,
            requests_per_minute=config.requests_per_minute,
            max_in_flight=config.max_in_flight,
            requests_per_second=config.requests_per_second,
            batch_requests_per_minute=config.batch_requests_per_minute,
            realm_batch_requests_per_minute=config.realm_batch_requests_per_minute,
        )

    def meter(self, realm_id: str) -> RealmMeter:
        return self.meters.setdefault(realm_id, RealmMeter())

    def report(self, realm_id: str) -> dict:
        """The realm's peaks and throttles for /_emulator/stats."""
        return self.meters.get(realm_id, RealmMeter()).report()

    async def enter(self, realm_id: str, now: float, *, metered: bool = True) -> Rejection | None:
        """Take an in-flight slot, and a slot of the request windows when `metered`; None
        when admitted. A batch enters unmetered and is charged once its items are read."""
        async with self._lock:
            meter = self.meter(realm_id)
            busy = meter.in_flight >= self.max_in_flight
            waits = [("concurrency", 1.0 if busy else None)]
            if metered:
                waits += self._request_waits(meter, 1, now)
            rejection = self._refusal(meter, waits)
            if rejection is not None:
                return rejection
            meter.in_flight += 1
            meter.peak_in_flight = max(meter.peak_in_flight, meter.in_flight)
            if metered:
                self._add_requests(meter, 1, now)
            return None

    def charge(self, realm_id: str, items: int, now: float, app: str = "") -> Rejection | None:
        """Meter a batch of `items` from `app` (a client id): all or none."""
        meter = self.meter(realm_id)
        waits = [
            *self._request_waits(meter, items, now),
            ("batch", meter.app_window(app).wait(now, 1, self.batch_requests_per_minute)),
            ("batch", meter.batches.wait(now, 1, self.realm_batch_requests_per_minute)),
        ]
        rejection = self._refusal(meter, waits)
        if rejection is not None:
            return rejection
        self._add_requests(meter, items, now)
        meter.app_window(app).add(now, 1)
        meter.batches.add(now, 1)
        return None

    def leave(self, realm_id: str) -> None:
        self.meter(realm_id).in_flight -= 1

    def reset_counters(self) -> None:
        for meter in self.meters.values():
            meter.reset()

    def _request_waits(
        self, meter: RealmMeter, count: int, now: float
    ) -> list[tuple[str, float | None]]:
        return [
            ("rate", meter.minute.wait(now, count, self.requests_per_minute)),
            ("second", meter.second.wait(now, count, self.requests_per_second)),
        ]

    def _add_requests(self, meter: RealmMeter, count: int, now: float) -> None:
        meter.minute.add(now, min(count, self.requests_per_minute))
        meter.second.add(now, min(count, self.requests_per_second))

    def _refusal(
        self, meter: RealmMeter, waits: list[tuple[str, float | None]]
    ) -> Rejection | None:
        """The limit that frees last, with its wait, when any is full and limits are on.

        Retry-After is that wait rounded up to whole seconds: a retry sent after it finds
        every window with room (unless other requests took it meanwhile).
        """
        full = [(wait, reason) for reason, wait in waits if wait is not None]
        if not self.enabled or not full:
            return None
        wait, reason = max(full, key=lambda item: item[0])
        meter.throttled[reason] += 1
        return Rejection(reason, max(1, math.ceil(wait)))

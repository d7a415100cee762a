"""QBO's per-realm limits: a sliding 60-second request window and the in-flight ceiling.

Intuit meters accounting requests per realm (QBO_API.md §3): 500 a minute and 10 at
once, each batch item counted as one request. The window runs on the emulator's clock so
a test can advance it instead of waiting a minute. The event loop is the only writer,
but admission is still taken under an asyncio lock so that the check and the increment
stay one step even if a later change puts an await between them.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Rejection:
    """Why a request was throttled and when the client may try again."""

    reason: str  # "rate" or "concurrency"
    retry_after: int  # whole seconds


@dataclass
class RealmMeter:
    """One realm's window of accepted request times and its requests in flight."""

    stamps: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    peak_in_flight: int = 0

    def prune(self, now: float) -> None:
        while self.stamps and self.stamps[0] <= now - WINDOW_SECONDS:
            self.stamps.popleft()

    def seconds_until_free(self, now: float, needed: int = 1) -> int:
        """Seconds until `needed` more requests fit a full window."""
        if not self.stamps:
            return 1
        index = min(needed, len(self.stamps)) - 1
        return max(1, math.ceil(self.stamps[index] + WINDOW_SECONDS - now))


class Limits:
    """Admission control for every realm; the numbers can change while serving."""

    def __init__(self, enabled: bool, requests_per_minute: int, max_in_flight: int) -> None:
        self.enabled = enabled
        self.requests_per_minute = requests_per_minute
        self.max_in_flight = max_in_flight
        self.meters: dict[str, RealmMeter] = {}
        self._lock = asyncio.Lock()

    def meter(self, realm_id: str) -> RealmMeter:
        return self.meters.setdefault(realm_id, RealmMeter())

    async def enter(self, realm_id: str, now: float, *, metered: bool = True) -> Rejection | None:
        """Take an in-flight slot, and a window slot when `metered`; None when admitted.

        A batch enters unmetered and charges its items once it has read them.
        """
        async with self._lock:
            meter = self.meter(realm_id)
            meter.prune(now)
            if self.enabled:
                if meter.in_flight >= self.max_in_flight:
                    return Rejection("concurrency", 1)
                if len(meter.stamps) >= self.requests_per_minute:
                    return Rejection("rate", meter.seconds_until_free(now))
            meter.in_flight += 1
            meter.peak_in_flight = max(meter.peak_in_flight, meter.in_flight)
            if metered:
                meter.stamps.append(now)
            return None

    def charge(self, realm_id: str, count: int, now: float) -> Rejection | None:
        """Meter `count` requests at once (a batch's items), all or none."""
        meter = self.meter(realm_id)
        meter.prune(now)
        if self.enabled and len(meter.stamps) + count > self.requests_per_minute:
            needed = len(meter.stamps) + count - self.requests_per_minute
            return Rejection("rate", meter.seconds_until_free(now, needed))
        meter.stamps.extend([now] * count)
        return None

    def leave(self, realm_id: str) -> None:
        self.meter(realm_id).in_flight -= 1

    def reset_peaks(self) -> None:
        for meter in self.meters.values():
            meter.peak_in_flight = meter.in_flight

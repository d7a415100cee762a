"""Per-realm request limiter: QBO's limits for one app, kept on the client side.

Intuit meters each realm (QBO_API.md §3): 500 requests in any 60 s, 10 in any second, 10
in flight, and for /batch 40 batch requests a minute, each of whose items also counts as a
request. A request over any of them costs a 429 and, by Intuit's word, a minute's wait,
so every request a run makes for a realm, token refreshes included, takes a slot from the
same limiter (`limiter_for`), whichever thread makes it, and waits here instead.

When does a request stop counting? QBO counts it when it arrives, somewhere between its
send and its answer.

- The minute (and the batch minute) count it until a minute after its answer, the one
  instant never earlier than QBO's count: a 429 costs a minute, and a request's answer
  time is nothing against a minute.
- The second counts it until a second after its send plus an arrival margin (or its
  answer, if sooner). Counting from the answer would cap a realm at 10 / (1 s + answer
  time): 7.7 requests a second at QBO's 300 ms, where 10 are allowed. What can break
  the limit is not the network's delay but its variation: requests sent 1 s + margin
  apart arrive closer only if the first was delayed by more than the margin over the
  tenth after it. The margin starts at 100 ms, and each 429 doubles it for the
  realm (up to a second), so a deployment whose delays vary more pays one throttle per
  doubling, not one per request. 100 ms: on a loaded 2-core machine with the emulator
  beside the sync, arrivals trailed writes by up to 40 ms (p99 27 ms), and the Internet
  adds its own; it costs at most a tenth of the second's rate (10 in 1.1 s).
- The send is when the request's last byte was written (the client marks it from
  httpcore's trace), not when the limiter let it through: between the two, a thread
  can wait for the GIL longer than any margin.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

DEFAULT_REQUESTS_PER_MINUTE = 500
DEFAULT_REQUESTS_PER_SECOND = 10
DEFAULT_MAX_IN_FLIGHT = 10
DEFAULT_BATCH_REQUESTS_PER_MINUTE = 40  # per realm and app; QBO's 120 per realm covers all apps
SECOND = 1.0
ARRIVAL_MARGIN = 0.1  # seconds; see the module's docstring
MAX_ARRIVAL_MARGIN = SECOND


@dataclass(frozen=True)
class Limits:
    """One app's limits per realm; raise them only where Intuit granted more."""

    requests_per_window: int = DEFAULT_REQUESTS_PER_MINUTE  # requests in any `window_seconds`
    window_seconds: float = 60.0
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    requests_per_second: int = DEFAULT_REQUESTS_PER_SECOND
    batch_requests_per_window: int = DEFAULT_BATCH_REQUESTS_PER_MINUTE

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "window_seconds":
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise ValueError(f"Limits.window_seconds must be positive, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{spec.name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS = Limits()


class _Entry:
    """One request's share of a window; `end` is when its count starts to run out, None
    while that waits for the send or the answer."""

    __slots__ = ("end", "weight")

    def __init__(self, weight: int) -> None:
        self.weight = weight
        self.end: float | None = None


class _Window:
    """A sliding window: at most `limit` weight of requests within `seconds` of their end.

    `from_send`: a request's end is its send plus the realm's arrival margin, or its
    answer if that comes first; otherwise its answer. A request never marked as sent (a
    token refresh, or one that failed before its send) ends at its answer."""

    def __init__(self, limit: int, seconds: float, *, from_send: bool = False) -> None:
        self.limit = limit
        self.seconds = seconds
        self.from_send = from_send
        self._entries: deque[_Entry] = deque()
        self._used = 0

    def cost(self, weight: int) -> int:
        """A weight above the whole window takes all of it: a batch of 30 items waits for
        an empty second rather than forever (the emulator charges it the same way)."""
        return min(weight, self.limit)

    def delay(self, weight: int, now: float) -> float | None:
        """0 when `weight` fits now, the seconds until it will, or None: until a request
        still in flight has ended."""
        while self._entries and self._expired(self._entries[0], now):
            self._used -= self._entries.popleft().weight
        excess = self._used + self.cost(weight) - self.limit
        if excess <= 0:
            return 0.0
        freed, free_at = 0, now
        for entry in self._entries:  # the oldest leave first, each `seconds` after its end
            if entry.end is None:
                return None
            freed += entry.weight
            free_at = max(free_at, entry.end + self.seconds)
            if freed >= excess:
                break
        return free_at - now

    def add(self, weight: int) -> _Entry:
        entry = _Entry(self.cost(weight))
        self._entries.append(entry)
        self._used += entry.weight
        return entry

    def sent(self, entry: _Entry, now: float, margin: float) -> None:
        if self.from_send:
            entry.end = now + margin  # a later send (httpcore's retry on a new connection) wins

    def answered(self, entry: _Entry, now: float) -> None:
        entry.end = now if entry.end is None else min(entry.end, now)

    def _expired(self, entry: _Entry, now: float) -> bool:
        return entry.end is not None and entry.end + self.seconds <= now


class RealmLimiter:
    """The realm's windows and in-flight cap, shared by threads; admits in arrival order.

    Waiters sleep on a condition: the first in line until its windows free (or a request
    ends), the rest until the line moves. First come, first served, so a batch waiting for
    an empty second is not overtaken forever by single requests.
    """

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        clock_rate: float = 1.0,
    ) -> None:
        """`clock_rate`: clock seconds per real second, for tests that run a faster clock."""
        self.limits = limits
        self._clock = clock
        self._clock_rate = clock_rate
        self._requests = _Window(limits.requests_per_window, limits.window_seconds)
        self._second = _Window(limits.requests_per_second, SECOND, from_send=True)
        self._batches = _Window(limits.batch_requests_per_window, limits.window_seconds)
        self.arrival_margin = ARRIVAL_MARGIN
        self._in_flight = 0
        self._line: deque[object] = deque()
        self._changed = threading.Condition()

    @contextmanager
    def slot(self, weight: int = 1, *, batch: bool = False) -> Iterator[Callable[[], None]]:
        """Hold a place in flight while the request runs, and `weight` requests of each
        window (a batch's item count); a batch also takes one of the batch window.

        Yields the request's `sent` mark: call it once the request is written."""
        if weight < 1:
            raise ValueError(f"a request weighs at least 1, not {weight}")
        charges = [(self._requests, weight), (self._second, weight)]
        if batch:
            charges.append((self._batches, 1))
        entries = self._admit(charges)
        try:
            yield lambda: self._sent(entries)
        finally:
            self._finish(entries)

    def _admit(self, charges: list[tuple[_Window, int]]) -> list[tuple[_Window, _Entry]]:
        ticket = object()
        with self._changed:
            self._line.append(ticket)
            try:
                while (delay := self._delay(ticket, charges)) != 0:
                    self._changed.wait(None if delay is None else delay / self._clock_rate)
            finally:
                self._line.remove(ticket)
                self._changed.notify_all()  # the next in line may fit as well
            self._in_flight += 1
            return [(window, window.add(weight)) for window, weight in charges]

    def _delay(self, ticket: object, charges: list[tuple[_Window, int]]) -> float | None:
        if self._line[0] is not ticket or self._in_flight >= self.limits.max_in_flight:
            return None
        now = self._clock()
        longest = 0.0
        for window, weight in charges:
            delay = window.delay(weight, now)
            if delay is None:
                return None
            longest = max(longest, delay)
        return longest

    def throttled(self) -> None:
        """QBO refused a request of this realm as over a limit: whatever the cause, the
        arrivals varied by more than the margin allowed for, so allow for more."""
        with self._changed:
            self.arrival_margin = min(MAX_ARRIVAL_MARGIN, self.arrival_margin * 2)

    def _sent(self, entries: list[tuple[_Window, _Entry]]) -> None:
        with self._changed:
            now = self._clock()
            for window, entry in entries:
                window.sent(entry, now, self.arrival_margin)
            self._changed.notify_all()  # a waiter for the second can now see when it frees

    def _finish(self, entries: list[tuple[_Window, _Entry]]) -> None:
        with self._changed:
            now = self._clock()
            for window, entry in entries:
                window.answered(entry, now)
            self._in_flight -= 1
            self._changed.notify_all()


_registry: dict[tuple[str, str, Limits], RealmLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(base_url: str, realm_id: str, limits: Limits = DEFAULT_LIMITS) -> RealmLimiter:
    """The process-wide limiter of one realm at one API host."""
    key = (base_url.rstrip("/"), realm_id, limits)
    with _registry_lock:
        if key not in _registry:
            _registry[key] = RealmLimiter(limits)
        return _registry[key]

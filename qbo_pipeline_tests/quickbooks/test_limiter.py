"""The limiter never lets more than a window's requests or the in-flight cap through."""

from __future__ import annotations

import random
import threading
import time
from bisect import bisect_left
from concurrent.futures import ThreadPoolExecutor

import pytest

from qbo_pipeline.quickbooks.limiter import ARRIVAL_MARGIN, Limits, RealmLimiter, limiter_for

SPEED = 50.0  # clock seconds per real second: a minute's window passes in 1.2 s


class FastClock:
    """Monotonic time running SPEED times faster, from 0."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self._origin) * SPEED


class ManualClock:
    """A clock that moves only when the test says so, and counts how often it is read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def most_within(stamps: list[float], seconds: float, weights: list[int] | None = None) -> int:
    """The largest total weight of stamps in any window [t, t + seconds)."""
    order = sorted(range(len(stamps)), key=stamps.__getitem__)
    times = [stamps[i] for i in order]
    sizes = [weights[i] if weights else 1 for i in order]
    totals = [0]
    for size in sizes:
        totals.append(totals[-1] + size)
    return max(
        totals[bisect_left(times, start + seconds)] - totals[i] for i, start in enumerate(times)
    )


def run(
    limiter: RealmLimiter,
    clock,
    requests: list[tuple[int, bool]],
    threads: int,
    longest: float = 0.004,
) -> dict:
    """Send `requests` ((weight, batch) each) from `threads` threads, each lasting up to
    `longest` real seconds; what started when."""
    starts: list[tuple[float, int, bool]] = []
    in_flight = peak = 0
    lock = threading.Lock()
    rng = random.Random(5)

    def request(spec: tuple[int, bool]) -> None:
        nonlocal in_flight, peak
        weight, batch = spec
        with limiter.slot(weight, batch=batch) as sent:
            sent()
            with lock:
                starts.append((clock(), weight, batch))
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(rng.uniform(0, longest))
            with lock:
                in_flight -= 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(request, requests))
    return {"starts": starts, "peak": peak}


class SendLog(RealmLimiter):
    """Records when each request was marked sent, as the limiter saw it: a stamp taken by
    the thread afterwards would also hold that thread's scheduling delay (the arrival
    jitter the margin is for)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sends: list[float] = []

    def _sent(self, entries) -> None:
        super()._sent(entries)
        second = next(entry for window, entry in entries if window is self._second)
        self.sends.append(second.end - self.arrival_margin)


def test_every_window_and_the_in_flight_cap_hold_under_many_threads():
    clock = FastClock()
    limiter = SendLog(Limits(), clock=clock, clock_rate=SPEED)
    result = run(limiter, clock, [(1, False)] * 300, threads=32)
    sends = limiter.sends

    assert len(sends) == 300 and result["peak"] <= 10
    assert most_within(sends, 1.0) == 10  # held, and used
    assert most_within(sends, 60.0) <= 500
    assert max(sends) - min(sends) > 29  # 300 requests at 10 a second


def test_the_minute_window_holds_when_the_second_would_allow_more():
    # 50 a second would make 3000 a minute: only the 500 a minute stop them.
    clock = FastClock()
    limiter = RealmLimiter(Limits(requests_per_second=50), clock=clock, clock_rate=SPEED)
    result = run(limiter, clock, [(1, False)] * 600, threads=32, longest=0)
    stamps = [start for start, _, _ in result["starts"]]

    assert len(stamps) == 600 and result["peak"] <= 10
    assert most_within(stamps, 1.0) <= 50
    assert most_within(stamps, 60.0) == 500  # held, and used
    assert max(stamps) - min(stamps) > 60  # the last 100 waited for the first to leave


def test_batches_weigh_their_items_and_take_a_slot_of_the_batch_window():
    clock = FastClock()
    limits = Limits(batch_requests_per_window=6)
    limiter = RealmLimiter(limits, clock=clock, clock_rate=SPEED)
    requests = [(30, True), (5, True)] * 6 + [(1, False)] * 200
    random.Random(3).shuffle(requests)
    result = run(limiter, clock, requests, threads=16)
    stamps = [start for start, _, _ in result["starts"]]
    items = [weight for _, weight, _ in result["starts"]]
    batches = [start for start, _, batch in result["starts"] if batch]

    assert len(stamps) == len(requests) and result["peak"] <= 10
    # A batch of 30 cannot fit a second of 10: it takes the whole second, no more.
    assert most_within(stamps, 1.0, [min(item, 10) for item in items]) <= 10
    assert most_within(stamps, 60.0, items) <= 500
    assert most_within(batches, 60.0) <= 6
    assert max(batches) - min(batches) >= 60  # twelve batches need two minutes' windows


def test_a_batch_waits_for_an_empty_second_without_spinning():
    clock = ManualClock()
    limiter = RealmLimiter(Limits(), clock=clock, clock_rate=10.0)
    for _ in range(3):
        with limiter.slot():
            pass  # three requests answered at 0: the second holds 3 of 10
    admitted = threading.Event()

    def batch() -> None:
        with limiter.slot(30, batch=True):
            admitted.set()

    waiter = threading.Thread(target=batch)
    waiter.start()
    time.sleep(0.3)
    assert not admitted.is_set()
    # Asleep, not polling: the clock was read once per wake-up (every 0.1 s real).
    assert clock.reads < 15
    clock.now = 0.99
    assert not admitted.wait(0.3)
    clock.now = 1.0  # the three left the window
    assert admitted.wait(2)
    waiter.join()


def _admitted_at(limiter: RealmLimiter, clock: ManualClock, steps: list[float]) -> float:
    """The first of `steps` (clock times, in order) at which a new request is let in."""
    admitted = threading.Event()

    def request() -> None:
        with limiter.slot():
            admitted.set()

    waiter = threading.Thread(target=request)
    waiter.start()
    try:
        for step in steps:
            clock.now = step
            with limiter._changed:  # wake the waiter to look at the new time
                limiter._changed.notify_all()
            if admitted.wait(0.3):
                return step
        raise AssertionError(f"not admitted by {steps[-1]}")
    finally:
        clock.now = 10_000.0
        with limiter._changed:
            limiter._changed.notify_all()
        waiter.join()


def test_the_second_counts_a_request_from_its_send_plus_the_arrival_margin():
    """A slow answer does not hold the second: QBO counted the request on arrival, which
    varies from the send by less than the margin."""
    clock = ManualClock()
    limiter = RealmLimiter(Limits(requests_per_second=1), clock=clock, clock_rate=10.0)
    with limiter.slot() as sent:
        clock.now = 0.2  # admitted at 0, written at 0.2: the GIL or a busy thread between
        sent()
        clock.now = 5.0  # the answer
    clock.now = 0.5

    late = 1.2 + ARRIVAL_MARGIN
    assert _admitted_at(limiter, clock, [1.0 + ARRIVAL_MARGIN, late - 0.01, late]) == late


def test_a_request_still_unsent_holds_the_second_until_it_is_sent():
    clock = ManualClock()
    limiter = RealmLimiter(Limits(requests_per_second=1), clock=clock, clock_rate=10.0)
    mark: list = []
    admitted, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with limiter.slot() as sent:
            mark.append(sent)
            admitted.set()
            release.wait(5)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert admitted.wait(2)
        clock.now = 0.5
        mark[0]()  # written at 0.5: the next may go at 1.5 plus the margin, answer or not
        assert _admitted_at(limiter, clock, [1.4, 1.5 + ARRIVAL_MARGIN]) == 1.5 + ARRIVAL_MARGIN
    finally:
        release.set()
        writer.join()


def test_the_second_counts_from_the_answer_when_it_comes_within_the_margin():
    clock = ManualClock()
    limiter = RealmLimiter(Limits(requests_per_second=1), clock=clock, clock_rate=10.0)
    with limiter.slot() as sent:
        sent()
        clock.now = 0.01
    clock.now = 0.5

    assert _admitted_at(limiter, clock, [1.0, 1.01]) == 1.01


def test_the_minute_counts_a_request_until_a_minute_after_its_answer():
    """A 429 costs a minute: the minute spaces requests from the one instant never earlier
    than QBO's count."""
    clock = ManualClock()
    limiter = RealmLimiter(Limits(requests_per_window=1), clock=clock, clock_rate=10.0)
    with limiter.slot():
        clock.now = 5.0  # a slow answer: QBO may have counted it as late as this

    assert _admitted_at(limiter, clock, [60.9, 64.9, 65.0]) == 65.0


def test_each_throttle_doubles_the_arrival_margin_up_to_a_second():
    clock = ManualClock()
    limiter = RealmLimiter(Limits(requests_per_second=1), clock=clock, clock_rate=10.0)
    limiter.throttled()
    with limiter.slot() as sent:
        sent()
        clock.now = 3.0
    clock.now = 0.5

    margin = 2 * ARRIVAL_MARGIN
    assert _admitted_at(limiter, clock, [1.0 + ARRIVAL_MARGIN, 1.0 + margin]) == 1.0 + margin
    for _ in range(10):
        limiter.throttled()
    assert limiter.arrival_margin == 1.0


def test_limits_are_positive_numbers_and_default_to_intuits():
    assert Limits() == Limits(500, 60.0, 10, 10, 40)
    with pytest.raises(ValueError, match="requests_per_second"):
        Limits(requests_per_second=0)
    with pytest.raises(ValueError, match="window_seconds"):
        Limits(window_seconds=0)
    with pytest.raises(ValueError, match="at least 1"), RealmLimiter().slot(0):
        pass


def test_one_limiter_per_realm_host_and_limits():
    a = limiter_for("http://h", "1")
    assert limiter_for("http://h/", "1") is a
    assert limiter_for("http://h", "2") is not a
    assert limiter_for("http://h", "1", Limits(max_in_flight=2)) is not a

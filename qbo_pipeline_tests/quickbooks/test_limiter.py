"""The limiter never lets more than the window's requests or the in-flight cap through."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from qbo_pipeline.quickbooks.limiter import Limits, RealmLimiter, limiter_for


def test_window_and_in_flight_caps_hold_under_contention():
    limits = Limits(requests_per_window=20, window_seconds=0.5, max_in_flight=3)
    limiter = RealmLimiter(limits)
    starts: list[float] = []
    in_flight = peak = 0
    lock = threading.Lock()

    def request(_: int) -> None:
        nonlocal in_flight, peak
        with limiter.slot():
            with lock:
                starts.append(time.monotonic())
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.005)
            with lock:
                in_flight -= 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(request, range(50)))

    assert peak <= 3
    starts.sort()
    # The test stamps a request just after the limiter admitted it; allow that skew.
    window = limits.window_seconds - 0.02
    for i, start in enumerate(starts):
        in_window = [s for s in starts[i:] if s - start < window]
        assert len(in_window) <= 20


def test_one_limiter_per_realm_and_host():
    a = limiter_for("http://h", "1")
    assert limiter_for("http://h", "1") is a
    assert limiter_for("http://h", "2") is not a

"""The fastest a sync can be under QBO's per-realm limits, and the requests it cannot avoid.

Intuit meters each realm: 500 requests in any 60 s, 10 in any 1 s, 10 in flight. A
closed formula (the larger of requests / 500 a minute and requests x latency / 10)
misses how the windows combine: the second window alone allows 600 a minute, so past
500 requests the minute window makes a whole pause, and under 500 it does not bind at
all. So the bound is simulated: each request starts at the earliest instant the three
limits allow, and the bound is when the last one finishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SECOND, MINUTE = 1.0, 60.0
PAGE = 1000  # QBO's largest MAXRESULTS


def minimum_seconds(
    requests: int,
    latency_s: float,
    per_second: int = 10,
    per_minute: int = 500,
    in_flight: int = 10,
) -> float:
    """Wall seconds `requests` independent requests of `latency_s` each need at the least.

    Greedy, which is optimal here: with a constant latency, request i starts at
    max(start[i-1], start[i-per_second] + 1, start[i-per_minute] + 60,
    start[i-in_flight] + latency). The windows count starts, as QBO stamps a request
    when it arrives.
    """
    if requests <= 0:
        return 0.0
    windows = ((per_second, SECOND), (per_minute, MINUTE), (in_flight, latency_s))
    starts: list[float] = []
    for i in range(requests):
        start = starts[-1] if starts else 0.0
        for size, gap in windows:
            if i >= size:
                start = max(start, starts[i - size] + gap)
        starts.append(start)
    return starts[-1] + latency_s


def data_pages(rows_per_entity: Mapping[str, int], page: int = PAGE) -> int:
    """Pages of `page` rows that hold every row; an empty entity still takes one answer."""
    return sum(max(1, math.ceil(rows / page)) for rows in rows_per_entity.values())


def needed_requests(rows_per_entity: Mapping[str, int], page: int = PAGE) -> int:
    """Data pages plus the probes a full sync cannot skip: one COUNT for each entity of
    more than one page (a full first page says there is more; the COUNT says how much, so
    the other pages can be read side by side)."""
    probes = sum(1 for rows in rows_per_entity.values() if rows > page)
    return data_pages(rows_per_entity, page) + probes

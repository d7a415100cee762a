"""Time ranges cover every second exactly once, however they are split."""

import itertools
from datetime import UTC, datetime, timedelta

from qbo_pipeline.sync.ranges import RangeQueue, even_split, midpoint

T0 = datetime(2025, 3, 9, 9, 0, tzinfo=UTC)  # the morning US clocks spring forward


def covered(ranges) -> list[datetime]:
    seconds = []
    for start, end in ranges:
        t = start
        while t < end:
            seconds.append(t)
            t += timedelta(seconds=1)
    return seconds


def test_even_split_is_contiguous_and_complete():
    end = T0 + timedelta(seconds=1001)
    parts = even_split(T0, end, 10)
    assert len(parts) == 10
    assert parts[0][0] == T0 and parts[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert covered(parts) == covered([(T0, end)])


def test_a_narrow_range_is_not_split_below_a_second():
    assert even_split(T0, T0 + timedelta(seconds=3), 10) == [
        (T0, T0 + timedelta(seconds=1)),
        (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)),
        (T0 + timedelta(seconds=2), T0 + timedelta(seconds=3)),
    ]
    assert midpoint(T0, T0 + timedelta(seconds=1)) is None
    assert midpoint(T0, T0 + timedelta(seconds=2)) == T0 + timedelta(seconds=1)


def test_idle_workers_split_only_ranges_known_to_have_more_rows():
    work = RangeQueue(pending=[(T0, T0 + timedelta(hours=1))])
    first = work.take()
    assert work.take() is None  # not busy yet: nothing is known to lie ahead
    end = work.advance(first, T0 + timedelta(minutes=10), busy=True)
    assert end == T0 + timedelta(hours=1)
    second = work.take()
    assert second.position == T0 + timedelta(minutes=35)
    assert second.end == T0 + timedelta(hours=1)
    assert work.advance(first, T0 + timedelta(minutes=11), busy=True) == second.position
    assert covered([(first.position, first.end), (second.position, second.end)]) == covered(
        [(T0 + timedelta(minutes=11), T0 + timedelta(hours=1))]
    )
    work.finish(first)
    work.finish(second)
    assert work.take() is None

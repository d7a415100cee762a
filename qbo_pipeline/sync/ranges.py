"""Time ranges of MetaData.LastUpdatedTime: the unit of work of a sync.

QBO stamps LastUpdatedTime to the second, so ranges are half-open [start, end) on whole
seconds and split only on whole seconds. A range is read with keyset paging (each page
starts at the last timestamp of the previous one), which, unlike STARTPOSITION paging,
cannot skip a row when another row is updated or deleted mid-sync; concurrency comes from
reading many ranges at once, and from splitting the busiest range when a worker is idle.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

SECOND = timedelta(seconds=1)


def floor_second(instant: datetime) -> datetime:
    return instant.replace(microsecond=0)


def midpoint(start: datetime, end: datetime) -> datetime | None:
    """A whole second strictly inside (start, end), or None when the range is too narrow."""
    whole_seconds = int((end - start).total_seconds())
    if whole_seconds < 2:
        return None
    return start + SECOND * (whole_seconds // 2)


def even_split(start: datetime, end: datetime, parts: int) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into at most `parts` contiguous ranges of whole seconds."""
    seconds = int((end - start).total_seconds())
    parts = max(1, min(parts, seconds))
    bounds = [start + SECOND * (seconds * i // parts) for i in range(parts)] + [end]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


@dataclass(eq=False)
class ActiveRange:
    """A range being read: `position` is where its next page starts, `end` may shrink.

    `busy` once a full page came back: only then is more data known to lie ahead, so only
    then is splitting it worth a request.
    """

    position: datetime
    end: datetime
    busy: bool = False


@dataclass
class RangeQueue:
    """Hands ranges to workers; an idle worker takes the back half of the widest busy one.

    Because an active range only ever shrinks (its position advances, its end may move
    down), once nothing is left to hand out nothing ever will be, and workers can stop.
    """

    pending: list[tuple[datetime, datetime]]
    _active: list[ActiveRange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> ActiveRange | None:
        with self._lock:
            if self.pending:
                start, end = self.pending.pop(0)
                return self._activate(start, end)
            busy = (r for r in self._active if r.busy)
            widest = max(busy, key=lambda r: r.end - r.position, default=None)
            cut = midpoint(widest.position, widest.end) if widest else None
            if widest is None or cut is None:
                return None
            end, widest.end = widest.end, cut
            return self._activate(cut, end)

    def advance(self, active: ActiveRange, position: datetime, *, busy: bool) -> datetime:
        """Record progress; returns the range's current end (it may have been split)."""
        with self._lock:
            active.position = position
            active.busy = busy
            return active.end

    def finish(self, active: ActiveRange) -> None:
        with self._lock:
            self._active.remove(active)

    def _activate(self, start: datetime, end: datetime) -> ActiveRange:
        active = ActiveRange(position=start, end=end)
        self._active.append(active)
        return active

"""QBO's timestamp formats, read and written as instants.

QBO stamps MetaData in Pacific time with the offset of the day (-07:00 or -08:00), so
two stamps an hour apart can sort the wrong way as strings around a DST change. Everything
here turns them into aware datetimes and back.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")

# Offsets come as -07:00, -0700 or Z; seconds and fractions are optional.
_OFFSET_WITHOUT_COLON = re.compile(r"([+-]\d{2})(\d{2})$")


def parse_instant(text: str) -> datetime:
    """An aware datetime from any form clients and QBO use.

    A bare date means its midnight in Pacific time, which is how QBO reads it in a filter.
    A datetime without an offset is also read as Pacific.
    """
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    value = _OFFSET_WITHOUT_COLON.sub(r"\1:\2", value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a QuickBooks timestamp; use 2025-01-31T09:30:00-08:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=PACIFIC)
    return parsed


def format_qbo(instant: datetime) -> str:
    """MetaData form: Pacific time, second precision, offset with a colon."""
    return instant.astimezone(PACIFIC).replace(microsecond=0).isoformat()


def format_envelope(instant: datetime) -> str:
    """The envelope `time` form: Pacific time with milliseconds."""
    return instant.astimezone(PACIFIC).isoformat(timespec="milliseconds")


def parse_date(text: str) -> date:
    return date.fromisoformat(text.strip()[:10])

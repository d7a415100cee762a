"""What a realm id (a QuickBooks company id) may look like, checked the same way everywhere.

A realm id arrives from a callback's query string, a request body, a command's argument
or a webhook, and goes into SQL parameters, log lines, file names and Dagster partition
keys. Intuit's are digits, and only digits are accepted, so that no realm id can carry a
path separator, a quote or a partition key's delimiter into any of those. The whole value
must match: `re.match` with `$` once let `3333\\n` through, and it became a partition key.
"""

from __future__ import annotations

import re

from qbo_pipeline.errors import BadRequest

_REALM_ID = re.compile(r"[0-9]{1,32}")


def is_realm_id(value: object) -> bool:
    return isinstance(value, str) and _REALM_ID.fullmatch(value) is not None


def check_realm_id(value: object, *, name: str = "realmId") -> str:
    """`value` if it is a realm id; BadRequest naming `name` otherwise."""
    if value is None or value == "":
        raise BadRequest(f"missing {name}")
    if not is_realm_id(value):
        raise BadRequest(
            f"{name} must be the company id Intuit sent with the callback: 1 to 32 digits, "
            "nothing else"
        )
    assert isinstance(value, str)
    return value

"""The real sandbox records of fixtures/, as QBO's API returned them."""

from __future__ import annotations

import json
from pathlib import Path


def sandbox_stream(fixtures_dir: Path, stream: str) -> list[dict]:
    """A stream's QBO entities as the API returned them (Airbyte's extra cursor dropped)."""
    records = []
    with (fixtures_dir / "qbo_sandbox_records.jsonl").open() as lines:
        for line in lines:
            message = json.loads(line)
            if message["stream"] == stream:
                entity = dict(message["data"])
                entity.pop("airbyte_cursor", None)
                records.append(entity)
    return records


def copies(records: list[dict], first_id: int, count: int) -> list[dict]:
    """`count` records like the sandbox's, each under an Id of its own."""
    made = []
    for number in range(first_id, first_id + count):
        record = dict(records[number % len(records)])
        record["Id"] = str(number)
        made.append(record)
    return made

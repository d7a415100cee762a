"""The warehouse's errors: what could not be reached, and what could not be written.

Terminal unless a class says otherwise (see qbo_pipeline.errors): retrying a write the
warehouse refused writes nothing new. Messages never hold a password.
"""

from __future__ import annotations

from qbo_pipeline.errors import PipelineError


class WarehouseError(PipelineError):
    """The warehouse could not be reached or written."""


class WarehouseBusy(WarehouseError):
    """Another process held the warehouse for longer than a writer waits; it will let go."""

    transient = True


class UnfitValue(WarehouseError):
    """A record QBO sent cannot be stored as it is (no Id, a value its column cannot
    hold); the message names the entity, the field and the value. The same data fails
    the same way again, so it is never retried."""


class UnfitColumn(WarehouseError):
    """A column the entity catalog adds or retypes cannot hold a value already stored in
    the table's raw JSON, so the table is not migrated (evolution.py). The message names
    the entity, the column and the first such value, and what to do; nothing changed, and
    the same catalog fails the same way until it is edited, so it is never retried."""

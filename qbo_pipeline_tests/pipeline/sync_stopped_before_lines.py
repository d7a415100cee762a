"""`qbo-pipeline` that stops a sync between an invoice batch's rows and its lines.

    python -m qbo_pipeline_tests.pipeline.sync_stopped_before_lines MARKER BATCH [ARGS...]

runs `qbo-pipeline ARGS...` (e.g. `sync`) in this process, as the command does, with one
difference: when the warehouse is about to write the lines of the BATCH-th batch
(counting from 1) of invoices, that batch's invoice rows are written in its still open transaction
and its lines are not. Then this process writes MARKER, a JSON object:

    committed: the ids written by each earlier batch (in transactions of their own on
        PostgreSQL; on DuckDB, in the same one as the open batch, see Warehouse.bulk)
    open: the ids of the batch being written
    invoices_in_transaction, lines_in_transaction: the realm's rows as the open
        transaction sees them, proof that its invoice rows are in and its lines are not

and waits, doing nothing, for the test to kill it. Test-only: the hook wraps
SqlWarehouse._replace_lines, which `upsert` calls after `_write_rows` in one session.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from qbo_pipeline import cli
from qbo_pipeline.warehouse.base import SqlWarehouse


def stop_before_lines(marker: Path, batch: int) -> None:
    replace_lines = SqlWarehouse._replace_lines
    committed: list[list[str]] = []

    def stopping(self, session, entity, realm_id, written, replaced):
        if entity.name != "Invoice":  # the other entities' batches go through
            return replace_lines(self, session, entity, realm_id, written, replaced)
        if len(committed) + 1 < batch:
            lines = replace_lines(self, session, entity, realm_id, written, replaced)
            committed.append(list(written))
            return lines
        [(invoices,)] = session.run(
            f"SELECT count(*) FROM qbo.{entity.table} WHERE realm_id = $1", [realm_id]
        )
        [(lines,)] = session.run(
            f"SELECT count(*) FROM qbo.{entity.lines.table} WHERE realm_id = $1", [realm_id]
        )
        state = {
            "committed": committed,
            "open": list(written),
            "invoices_in_transaction": int(invoices),
            "lines_in_transaction": int(lines),
        }
        partial = marker.with_name(marker.name + ".partial")
        partial.write_text(json.dumps(state))
        os.replace(partial, marker)  # the test never reads half a marker
        threading.Event().wait()  # until SIGKILL

    SqlWarehouse._replace_lines = stopping


if __name__ == "__main__":
    stop_before_lines(Path(sys.argv[1]), int(sys.argv[2]))
    sys.exit(cli.main(sys.argv[3:]))

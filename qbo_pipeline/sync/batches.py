"""Pages collected into batches and written, joining the next batch while one is written."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.warehouse import Records, Warehouse


class BatchWriter:
    """Collects pages into batches of `batch_rows` and writes each as it fills.

    Pages arrive typed (records.py). A full batch is joined (one version of each record)
    on a helper thread while the caller's thread writes the batch before it. At most one
    batch is being joined and one written. Inside `with`, what the caller's thread writes
    goes in one transaction where the warehouse gains by it (Warehouse.bulk).
    """

    def __init__(
        self,
        warehouse: Warehouse,
        entity: Entity,
        realm_id: str,
        batch_rows: int,
        on_batch: Callable[[int, int], None] | None,
    ) -> None:
        self.warehouse, self.entity, self.realm_id = warehouse, entity, realm_id
        self.batch_rows = batch_rows
        self.on_batch = on_batch
        self.rows = self.lines = self.fetched = 0
        self._batch: list[Records] = []
        self._batched = 0
        self._joiner = ThreadPoolExecutor(1, thread_name_prefix=f"qbo-join-{entity.name}")
        self._pending: Future[Records] | None = None
        self._exits = ExitStack()

    def add(self, page: Records) -> None:
        self.fetched += len(page)
        if not page.ids:
            return
        self._batch.append(page)
        self._batched += len(page)
        if self._batched >= self.batch_rows:
            self._hand_over()

    def flush(self) -> None:
        """Write everything added so far."""
        self._hand_over()
        self._write_pending()

    def __enter__(self) -> BatchWriter:
        self._exits.enter_context(self.warehouse.bulk())
        return self

    def __exit__(self, *exc: object) -> None:
        with self._exits:
            self.close()

    def close(self) -> None:
        """Stop the helper thread; a batch still being joined is dropped unwritten."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._joiner.shutdown(wait=True)

    def _hand_over(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._batched = self._batch, [], 0
        joined = self._joiner.submit(Records.joined, self.entity, batch)
        self._write_pending()
        self._pending = joined

    def _write_pending(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        result = self.warehouse.upsert(self.entity, self.realm_id, pending.result())
        self.rows += result.rows_written
        self.lines += result.lines_written
        if self.on_batch:
            self.on_batch(self.rows, self.lines)

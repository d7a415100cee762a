"""Pages collected into batches and written, preparing the next batch while one is written."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from qbo_pipeline.quickbooks.catalog import Entity
from qbo_pipeline.sync.reading import Page
from qbo_pipeline.warehouse import PreparedBatch, Warehouse


class BatchWriter:
    """Collects pages into batches of `batch_rows` and writes each as it fills.

    A full batch is prepared (encoded, and typed where the warehouse can) on a helper
    thread while the caller's thread writes the batch before it, so the warehouse's two
    halves of the work overlap. At most one batch is being prepared and one written.
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
        self._batch: list[str] = []  # JSON texts
        self._preparer = ThreadPoolExecutor(1, thread_name_prefix=f"qbo-prepare-{entity.name}")
        self._pending: Future[PreparedBatch] | None = None

    def add(self, page: Page) -> None:
        self.fetched += len(page.texts)
        self._batch.extend(page.texts)
        if len(self._batch) >= self.batch_rows:
            self._hand_over()

    def flush(self) -> None:
        """Write everything added so far."""
        self._hand_over()
        self._write_pending()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the helper thread; a batch still being prepared is dropped unwritten."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._preparer.shutdown(wait=True)

    def _hand_over(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        prepared = self._preparer.submit(self.warehouse.prepare, self.entity, batch)
        self._write_pending()
        self._pending = prepared

    def _write_pending(self) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        result = self.warehouse.upsert(self.entity, self.realm_id, pending.result())
        self.rows += result.rows_written
        self.lines += result.lines_written
        if self.on_batch:
            self.on_batch(self.rows, self.lines)

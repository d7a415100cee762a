"""The one-run-per-company rule inside the run itself: a qbo_sync run whose company another
run holds (another process here; another machine or Dagster deployment sharing the token
store alike) reads nothing until that run lets go, then syncs."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest

from qbo_pipeline.commands.execution import sync_realms
from qbo_pipeline_tests.vault.test_realm_turns import let_go, other_run

pytestmark = pytest.mark.slow


def requests_to(company) -> int:
    """What reached QBO for the company since the counters were reset."""
    return company.admin("stats")["realms"].get(company.realm_id, {}).get("requests", 0)


def test_a_sync_run_waits_for_the_run_holding_its_company_then_syncs(connect):
    company = connect(customers=20, invoices=40)
    outcome: list = []
    with dg.instance_for_test() as instance:
        with other_run(company.env, company.realm_id, 300.0) as holder:
            company.reset_stats()
            runner = threading.Thread(
                target=lambda: outcome.extend(sync_realms([company.realm_id], instance=instance))
            )
            runner.start()
            deadline = time.monotonic() + 60
            while not instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
                assert time.monotonic() < deadline, "the run did not start"
                time.sleep(0.1)
            time.sleep(3.0)  # well into the sync step, which waits for its turn
            assert requests_to(company) == 0
            released = let_go(holder)
        runner.join(timeout=120)
    [run] = outcome
    assert run.success, run.error
    assert requests_to(company) > 0
    assert released < time.time()
    with company.runtime.warehouse() as warehouse:
        assert warehouse.count("qbo.invoices", company.realm_id) == 40

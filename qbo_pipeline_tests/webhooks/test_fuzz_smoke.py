"""The webhook fuzzer (benchmarks/webhook_fuzz.py) at a small count, against the receiver
served in-process: the same generator and the same checks, on every test run, so a change
that lets a bad signature through, loses or doubles an event, or answers 5xx shows here
before anyone runs the benchmark. Answer times are the benchmark's to judge, not a test's.
"""

from __future__ import annotations

import pytest

from benchmarks.webhook_fuzz import Failure, World, check, generate, read_inbox, send
from qbo_pipeline_tests.webhooks.conftest import Receiving
from qbo_pipeline_tests.webhooks.deliveries import VERIFIER

SEED = 1130
# Kinds that once made the receiver answer 500: lone surrogates and NULs in ids (the
# database refused them), and stamps that leave datetime's range in UTC.
ONCE_ANSWERED_500 = (
    "odd:surrogate-id",
    "non-utf8:surrogate-bytes",
    "odd:far-time",
    "odd:legacy-far-time",
    "odd:nul-id",
)


def _fuzz(receiving: Receiving, count: int, **kinds: tuple[str, ...]) -> list[Failure]:
    """The benchmark's run in small: one probe of many rejects, at a sixteenth of the cap
    (the benchmark's full-size ones take seconds each)."""
    world = World(VERIFIER, (receiving.realm_id,))
    cases = generate(count, SEED, world, probes=(("many-rejects", 1 / 16),), **kinds)
    answers = send(receiving.url, cases, threads=8)
    settings = receiving.runtime.settings
    database = settings.database_url or settings.default_database_path
    return check(cases, answers, read_inbox(database))


def _shown(failures: list[Failure]) -> str:
    return "\n".join(failure.shown() for failure in failures[:10])


@pytest.mark.parametrize(("count", "kinds"), [(300, {}), (12, {"only": ONCE_ANSWERED_500})])
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_fuzzed_deliveries_are_refused_or_stored_once_and_never_answered_5xx(
    receiving_factory, store, count, kinds, request
):
    options = {"customers": 20, "invoices": 30}
    if store == "postgres":
        options["database_url"] = request.getfixturevalue("postgres_url")
    receiving = receiving_factory(**options)
    failures = _fuzz(receiving, count, **kinds)
    assert not failures, _shown(failures)

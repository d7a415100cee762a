"""The OAuth state store on SQLite and PostgreSQL: single use, ten minutes, only a hash kept,
and shared by every process that opens the same database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier, Thread

import pytest

from qbo_pipeline.vault.database import open_database
from qbo_pipeline.vault.oauth_states import STATES_TABLE, InvalidState, OAuthStates


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tokens.db'}"
    return request.getfixturevalue("postgres_url")


def states_on(url: str, tmp_path: Path) -> OAuthStates:
    """A fresh handle, as another process (or the service after a restart) would open."""
    return OAuthStates(open_database(url, default_path=tmp_path / "unused.db"))


def test_a_state_works_once_from_any_process(database_url, tmp_path):
    issued = states_on(database_url, tmp_path).issue()
    assert issued.expires_at - datetime.now(UTC) > timedelta(minutes=9, seconds=50)
    states_on(database_url, tmp_path).consume(issued.value)
    with pytest.raises(InvalidState) as refused:
        states_on(database_url, tmp_path).consume(issued.value)
    assert refused.value.reason == "used"


def test_only_a_hash_of_the_state_is_stored(database_url, tmp_path):
    states = states_on(database_url, tmp_path)
    issued = states.issue()
    with states.db.read() as tx:
        rows = tx.all(f"SELECT * FROM {STATES_TABLE}")
    assert len(rows) == 1
    assert issued.value not in repr(rows)
    assert issued.value not in repr(issued)


def test_expired_unknown_and_missing_states_are_refused(database_url, tmp_path):
    states = states_on(database_url, tmp_path)
    now = datetime.now(UTC)
    old = states.issue(now=now - timedelta(minutes=11))
    for value, reason in ((old.value, "expired"), ("made-up", "unknown"), ("", "missing")):
        with pytest.raises(InvalidState) as refused:
            states.consume(value, now=now)
        assert refused.value.reason == reason
        assert "\n" not in str(refused.value)
    with pytest.raises(InvalidState, match="used already"):
        states.consume(old.value, now=now)


def test_states_long_expired_are_purged_when_new_ones_are_issued(database_url, tmp_path):
    states = states_on(database_url, tmp_path)
    states.issue(now=datetime.now(UTC) - timedelta(days=2))
    states.issue()
    with states.db.read() as tx:
        assert tx.one(f"SELECT count(*) AS n FROM {STATES_TABLE}")["n"] == 1


def test_two_callbacks_racing_with_one_state_let_exactly_one_through(database_url, tmp_path):
    issued = states_on(database_url, tmp_path).issue()
    barrier = Barrier(4)
    outcomes: list[str] = []

    def consume() -> None:
        states = states_on(database_url, tmp_path)
        barrier.wait()
        try:
            states.consume(issued.value)
            outcomes.append("accepted")
        except InvalidState as error:
            outcomes.append(error.reason)

    threads = [Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted", "used", "used", "used"]

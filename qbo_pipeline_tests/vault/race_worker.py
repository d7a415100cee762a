"""The body of one racing process in the cross-process refresh tests (run under spawn).

Each builds its own store and provider, as separate workers would, so the only thing
between the racers is the token store.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from qbo_pipeline.runtime import Runtime
from qbo_pipeline.vault import ConnectionStore, KeyRing, TokenProvider, fingerprint, open_database
from qbo_pipeline_tests.vault.intuit import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI


def race(target: Callable, args: tuple, processes: int, *, timeout: float = 300) -> list:
    """Run `target(*args, start, results)` in `processes` spawned processes that all start
    at once (a barrier), and collect what each put on `results`."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    racers = [
        context.Process(target=target, args=(*args, start, results)) for _ in range(processes)
    ]
    for racer in racers:
        racer.start()
    outcomes = [results.get(timeout=timeout) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    return outcomes


def fetch_access_token(
    database_url: str,
    keys: str,
    discovery_url: str,
    realm_id: str,
    start: Barrier,
    results: Queue,
) -> None:
    """Ask for a token once every process is ready; report its fingerprint or the error."""
    from qbo_pipeline.quickbooks.oauth import OAuthClient

    try:
        db = open_database(database_url, default_path=Path("unused.db"))
        store = ConnectionStore(db, KeyRing.parse(keys))
        oauth = OAuthClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=REDIRECT_URI,
            discovery_url=discovery_url,
        )
        provider = TokenProvider(store, oauth)
        start.wait(timeout=30)
        results.put(("ok", fingerprint(provider.access_token(realm_id))))
    except Exception as error:
        results.put(("error", f"{type(error).__name__}: {error}"))


def fetch_and_use_token(env: dict[str, str], realm_id: str, start: Barrier, results: Queue) -> None:
    """Once every process is ready, get a token and run one query with it, as a Dagster
    worker built from the environment would.

    Reports the token's fingerprint, the query's status and when the token call started
    and ended, or the error.
    """
    os.environ.update(env)
    runtime = None
    try:
        runtime = Runtime.from_env()
        # Open the database and read discovery before the start, so only refreshes race.
        runtime.store.list()
        assert runtime.oauth.endpoints.token
        start.wait(timeout=120)
        began = time.time()
        token = runtime.tokens.access_token(realm_id)
        ended = time.time()
        # Through the API client, as a worker queries: sixteen processes at once are over
        # the realm's 10 a second, so some are throttled and wait what Retry-After says.
        with runtime.client(realm_id) as client:
            client.query("select * from Customer maxresults 1")
        results.put(("ok", fingerprint(token), 200, began, ended))
    except Exception as error:
        results.put(("error", f"{type(error).__name__}: {error}", 0, 0.0, 0.0))
    finally:
        if runtime is not None:
            runtime.close()

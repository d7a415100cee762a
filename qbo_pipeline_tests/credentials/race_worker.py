"""The body of one racing process in the refresh race test (run under spawn).

Each process builds its own Runtime from the environment, as a Dagster worker would, so
the only thing between the racers is the token store's lock.
"""

from __future__ import annotations

import os
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import httpx

from qbo_pipeline.runtime import Runtime
from qbo_pipeline.vault import fingerprint


def fetch_and_use_token(env: dict[str, str], realm_id: str, start: Barrier, results: Queue) -> None:
    """Once every process is ready, get a token and run one query with it.

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
        response = httpx.get(
            f"{runtime.settings.api_base_url}/v3/company/{realm_id}/query",
            params={"query": "select * from Customer maxresults 1", "minorversion": "75"},
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=30,
        )
        results.put(("ok", fingerprint(token), response.status_code, began, ended))
    except Exception as error:
        results.put(("error", f"{type(error).__name__}: {error}", 0, 0.0, 0.0))
    finally:
        if runtime is not None:
            runtime.close()

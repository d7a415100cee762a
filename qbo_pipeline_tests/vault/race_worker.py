"""The body of one racing process in the cross-process refresh test (run under spawn)."""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from qbo_pipeline.quickbooks.oauth import OAuthClient
from qbo_pipeline.vault import ConnectionStore, KeyRing, TokenProvider, fingerprint, open_database
from qbo_pipeline_tests.vault.oauth_stub import CLIENT_ID, CLIENT_SECRET


def fetch_access_token(
    database_url: str,
    keys: str,
    discovery_url: str,
    realm_id: str,
    start: Barrier,
    results: Queue,
) -> None:
    """Ask for a token once every process is ready; report its fingerprint or the error."""
    try:
        db = open_database(database_url, default_path=Path("unused.db"))
        store = ConnectionStore(db, KeyRing.parse(keys))
        oauth = OAuthClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri="http://127.0.0.1/callback",
            discovery_url=discovery_url,
        )
        provider = TokenProvider(store, oauth)
        start.wait(timeout=30)
        results.put(("ok", fingerprint(provider.access_token(realm_id))))
    except Exception as error:
        results.put(("error", f"{type(error).__name__}: {error}"))

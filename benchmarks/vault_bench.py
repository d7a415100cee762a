"""Credentials under load: what a connect costs Intuit, one refresh for many workers, and
how long everyone else waits while one company's token endpoint hangs.

    .venv/bin/python -m benchmarks.vault_bench [--rounds N]

Runs an emulator (strict rotation) and the auth service on loopback, with the token store
on SQLite, where a refresh once held the database's only write lock while Intuit answered.
Each figure is held to a limit: the calls a connect needs, one refresh per expiry, and the
2 s the availability requirement allows.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from benchmarks.run import Figure

REFRESH_STALL = 0.3  # seconds the emulator holds the one refresh, so the workers pile up


def _stats(emulator_url: str) -> dict:
    return httpx.get(f"{emulator_url}/_emulator/stats").json()


def _admin(emulator_url: str, method: str, path: str, body: dict | None = None) -> dict:
    response = httpx.request(method, f"{emulator_url}/_emulator/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _connect(base: str, admin: dict[str, str], emulator_url: str, realm: str | None) -> None:
    """The browser's part of a connect: our authorize link, Intuit's consent, our callback."""
    if realm is not None:
        _admin(emulator_url, "POST", "consent", {"realm_id": realm})
    authorize = httpx.get(f"{base}/quickbooks/auth/authorize", headers=admin)
    consent = httpx.get(authorize.headers["location"])
    page = httpx.get(consent.headers["location"], timeout=30)
    if page.status_code != 200:
        raise RuntimeError(f"the connect failed: {page.text[:300]}")


def _worker(env: dict[str, str], realm: str, start, results) -> None:
    os.environ.update(env)
    from qbo_pipeline.runtime import Runtime

    runtime = Runtime.from_env()
    runtime.store.list()
    runtime.oauth.endpoints  # noqa: B018 - discovery before the start: only refreshes race
    start.wait(timeout=120)
    began = time.perf_counter()
    try:
        runtime.tokens.access_token(realm)
        results.put(("ok", time.perf_counter() - began))
    except Exception as error:  # reported, counted as a failure below
        results.put(("error", f"{type(error).__name__}: {error}"))
    finally:
        runtime.close()


def _race(env: dict[str, str], realm: str, workers: int) -> list[tuple]:
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=_worker, args=(env, realm, start, results)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    return outcomes


def _expire(runtime, realm: str) -> None:
    """Make the stored access token one that must be refreshed before use."""
    from qbo_pipeline.quickbooks.oauth import TokenSet

    tokens = runtime.store.decrypt(realm)
    expired = datetime.now(UTC) - timedelta(minutes=1)
    runtime.store.save_tokens(
        realm,
        TokenSet(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_expires_at=expired,
            refresh_expires_at=tokens.refresh_expires_at,
            issued_at=expired - timedelta(hours=1),
        ),
    )


def _timed(call) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed calls per figure")
    parser.add_argument("--workers", type=int, default=16, help="processes racing to refresh")
    args = parser.parse_args(argv)

    from qbo_pipeline.emulator.config import EmulatorConfig
    from qbo_pipeline.emulator.server import EmulatorServer
    from qbo_pipeline.runtime import Runtime
    from qbo_pipeline.service.app import create_app
    from qbo_pipeline.service.server import ServiceServer
    from qbo_pipeline.settings import Settings
    from qbo_pipeline.vault.crypto import generate_key

    secret = secrets.token_urlsafe(16)
    config = EmulatorConfig(
        client_id="bench-app", client_secret=secret, rotation="strict", customers=5, invoices=5
    )
    figures: list[Figure] = []
    with (
        tempfile.TemporaryDirectory(prefix="qbo-vault-bench-") as folder,
        EmulatorServer(config) as emulator,
    ):
        server = ServiceServer()
        admin_token = secrets.token_urlsafe(24)
        env = {
            "QUICKBOOKS_CLIENT_ID": "bench-app",
            "QUICKBOOKS_CLIENT_SECRET": secret,
            "QUICKBOOKS_DISCOVERY_URL": emulator.discovery_url,
            "QUICKBOOKS_API_BASE_URL": emulator.api_base_url,
            "QUICKBOOKS_REDIRECT_URI": f"{server.base_url}/quickbooks/auth/callback",
            "QBO_TOKEN_KEY": generate_key(),
            "QBO_STATE_DIR": str(Path(folder) / "state"),
            "QBO_ADMIN_TOKEN": admin_token,
        }
        os.environ.update(env)
        runtime = Runtime(Settings.from_env())
        server.start(create_app(runtime))
        base, admin = server.base_url, {"Authorization": f"Bearer {admin_token}"}
        realm_a = emulator.config.realm_id
        realm_b = "4620816365000000001"
        _admin(emulator.base_url, "POST", "companies", {"realm_id": realm_b, "customers": 2})

        # What one connect costs at Intuit: the code exchange and one API call.
        before = _stats(emulator.base_url)
        _connect(base, admin, emulator.base_url, realm_a)
        after = _stats(emulator.base_url)
        api_calls = after["realms"][realm_a]["requests"] - before["realms"].get(realm_a, {}).get(
            "requests", 0
        )
        token_calls = after["token_endpoint"]["calls"] - before["token_endpoint"]["calls"]
        figures += [
            Figure("connect: QBO API calls (companyinfo, to prove the company)", api_calls,
                   "calls", 1, "max"),
            Figure("connect: token endpoint calls (the code exchange)", token_calls,
                   "calls", 1, "max"),
        ]  # fmt: skip
        _connect(base, admin, emulator.base_url, realm_b)

        # Single flight: many processes find the same expired token at once.
        _expire(runtime, realm_a)
        _admin(emulator.base_url, "POST", "oauth/stall", {"realm_id": None,
                                                           "seconds": REFRESH_STALL})  # fmt: skip
        refreshes = _stats(emulator.base_url)["token_endpoint"]["calls_by_grant_type"].get(
            "refresh_token", 0
        )
        outcomes = _race(env, realm_a, args.workers)
        _admin(emulator.base_url, "DELETE", "oauth/stall")
        token_stats = _stats(emulator.base_url)["token_endpoint"]
        refreshed = token_stats["calls_by_grant_type"].get("refresh_token", 0) - refreshes
        waits = [seconds for status, seconds in outcomes if status == "ok"]
        figures += [
            Figure(f"{args.workers} processes, one expired token: refreshes at Intuit",
                   refreshed, "calls", 1, "max"),
            Figure(f"{args.workers} processes: failed", len(outcomes) - len(waits), "procs",
                   0, "max"),
            Figure(f"{args.workers} processes: slowest wait for the token (refresh held "
                   f"{REFRESH_STALL:g} s)", max(waits), "s", REFRESH_STALL + 2, "max"),
        ]  # fmt: skip

        # Availability: realm A's token endpoint hangs mid-refresh.
        _admin(emulator.base_url, "POST", "oauth/stall", {"realm_id": realm_a, "seconds": None})
        hung = threading.Thread(
            target=lambda: httpx.post(
                f"{base}/quickbooks/auth/refresh", json={"realmId": realm_a}, headers=admin,
                timeout=120,
            )
        )  # fmt: skip
        hung.start()
        while _admin(emulator.base_url, "GET", "oauth/stall")["held"] < 1:
            time.sleep(0.02)
        authorize = [
            _timed(lambda: httpx.get(f"{base}/quickbooks/auth/authorize", headers=admin))
            for _ in range(args.rounds)
        ]
        refresh_b = [
            _timed(
                lambda: httpx.post(
                    f"{base}/quickbooks/auth/refresh", json={"realmId": realm_b}, headers=admin
                ).raise_for_status()
            )
            for _ in range(args.rounds)
        ]
        status = [
            _timed(lambda: httpx.get(f"{base}/quickbooks/auth/status?realmId={realm_b}",
                                     headers=admin).raise_for_status())
            for _ in range(args.rounds)
        ]  # fmt: skip
        _admin(emulator.base_url, "DELETE", "oauth/stall")
        hung.join(timeout=60)
        server.stop()
        runtime.close()
        figures += [
            Figure("while realm A's token endpoint hangs: /authorize, slowest", max(authorize),
                   "s", 2, "max"),
            Figure("  ... /authorize, median", statistics.median(authorize), "s", 2, "max"),
            Figure("  ... realm B's refresh at Intuit, slowest", max(refresh_b), "s", 2, "max"),
            Figure("  ... realm B's refresh, median", statistics.median(refresh_b), "s", 2,
                   "max"),
            Figure("  ... realm B's status, slowest", max(status), "s", 2, "max"),
        ]  # fmt: skip
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, token store on SQLite")
    for figure in figures:
        print(figure.line())
    return 0 if all(f.ok for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())

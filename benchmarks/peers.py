"""The two peer QuickBooks connectors and our sync, side by side on the same emulator.

    .venv/bin/python -m benchmarks.peers            # 20,000 customers + 40,000 invoices, 300 ms
    .venv/bin/python -m benchmarks.peers --quick    # 2,000 + 4,000

The peers are the Singer tap `tap-quickbooks` and Airbyte's `airbyte-source-quickbooks`,
each installed from PyPI into its own virtualenv under .qbo/peers/ (pinned below). Their
code is not modified: both reach QuickBooks through `requests` at Intuit's hard-coded
hosts, and neither takes a base URL in its config, so a `sitecustomize.py` written into
each peer's venv rewrites requests for those hosts to the emulator (see SITECUSTOMIZE).

Each tool reads Customer and Invoice from its own copy of the same generated company (same
seed and size, its own realm, so one tool's requests do not count against the next one's
per-realm minute), in a fresh child process whose wall time, CPU seconds and peak RSS come
from os.wait4, and whose requests come from the emulator's counters for its realm.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from benchmarks.run import CLI, _clean_env, _free_port, _wait_for
from benchmarks.sync_bench import Emulator  # our emulator in its own process

CUSTOMERS, INVOICES, LATENCY_MS = 20_000, 40_000, 300
QUICK_CUSTOMERS, QUICK_INVOICES = 2_000, 4_000
ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / ".qbo" / "peers"
LOGS_DIR = PEERS_DIR / "logs"
REDIRECT_VARIABLE = "QBO_PEERS_REDIRECT_TO"
STREAMS = ("customers", "invoices")
SCOPE = "com.intuit.quickbooks.accounting"
CALLBACK = "http://127.0.0.1/peers-callback"

# Written into each peer's site-packages: Python imports it at start-up in that venv. It
# does nothing unless QBO_PEERS_REDIRECT_TO is set, so the venv stays usable as it is.
# `requests.Session.send` is where every request of both peers passes once prepared
# (tap-quickbooks' OAuth2Session and its token refresh; the Airbyte CDK's HttpClient, and
# its OAuthAuthenticator's `requests.request`), after requests-oauthlib has checked the
# URL is https; rewriting there leaves the callers' view (and the code) unchanged.
SITECUSTOMIZE = '''\
"""Written by qbo-pipeline's benchmarks/peers.py: sends requests for Intuit's hosts to the
QBO emulator at $QBO_PEERS_REDIRECT_TO. Does nothing when that variable is unset."""
import os

_TARGET = os.environ.get("QBO_PEERS_REDIRECT_TO", "").rstrip("/")
_INTUIT = (
    "https://quickbooks.api.intuit.com/",
    "https://sandbox-quickbooks.api.intuit.com/",
    "https://oauth.platform.intuit.com/",
)

if _TARGET:
    import requests

    _send = requests.Session.send

    def _send_to_emulator(self, request, **kwargs):
        for prefix in _INTUIT:
            if request.url.startswith(prefix):
                request.url = _TARGET + "/" + request.url[len(prefix):]
                break
        return _send(self, request, **kwargs)

    requests.Session.send = _send_to_emulator
'''


@dataclass(frozen=True)
class Grant:
    """Tokens for one realm, minted through the emulator's own consent and code exchange."""

    realm_id: str
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass
class Run:
    """One measured child process: what wait4 and the emulator say about it."""

    tool: str
    version: str
    seconds: float
    cpu_seconds: float
    peak_mib: float
    exit_code: int
    requests: int = 0
    batch_items: int = 0
    records: dict[str, int] = field(default_factory=dict)
    distinct: dict[str, int] = field(default_factory=dict)
    lines: int = 0
    emulator: dict = field(default_factory=dict)  # the realm's counters after the run
    phases: dict[str, float] = field(default_factory=dict)  # our entities' own sync times
    error: str = ""


@dataclass(frozen=True)
class Peer:
    """A peer connector: its package, the pin that works, and how to drive it."""

    name: str
    package: str
    version: str
    executable: str
    related: tuple[str, ...]  # the libraries that do its HTTP and protocol, for the report
    page_size: str
    # Writes its config and catalog, discovering first; returns the measured command.
    prepare: Callable[[Peer, Path, Grant, str, str, dict[str, str]], list[str]]
    record: Callable[[dict], tuple[str, str] | None]  # (stream, Id) of a RECORD message

    @property
    def venv(self) -> Path:
        return PEERS_DIR / f"{self.name}-venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin" / self.executable


# Installing the peers


def _venv_python(peer: Peer) -> str:
    return str(peer.venv / "bin" / "python")


def _installed(peer: Peer, package: str) -> str | None:
    """The version of `package` in the peer's venv, None if it is not there."""
    if not Path(_venv_python(peer)).exists():
        return None
    probe = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    found = subprocess.run(
        [_venv_python(peer), "-c", probe, package], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else None


def ensure_peer(peer: Peer) -> dict[str, str]:
    """Install the pinned peer into its own venv unless it is there; always (re)write the
    sitecustomize that redirects it. Returns the versions of it and its libraries."""
    if _installed(peer, peer.package) != peer.version:
        print(f"installing {peer.package}=={peer.version} into {peer.venv}", flush=True)
        subprocess.run(["python3", "-m", "venv", "--clear", str(peer.venv)], check=True)
        subprocess.run(
            [_venv_python(peer), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"{peer.package}=={peer.version}"],
            check=True,
        )  # fmt: skip
    site = subprocess.run(
        [_venv_python(peer), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(site) / "sitecustomize.py").write_text(SITECUSTOMIZE)
    versions = {peer.package: peer.version}
    versions.update({name: _installed(peer, name) or "?" for name in peer.related})
    return versions


# The emulator: companies and tokens


def start_emulator(customers: int, invoices: int, latency_ms: int) -> Emulator:
    """QBO's limits on (the emulator's defaults), `latency_ms` a page of 1000 rows."""
    from qbo_pipeline.vault.crypto import generate_key

    port, secret = _free_port(), generate_key()
    process = subprocess.Popen(
        [CLI, "emulator", "--port", str(port), "--customers", str(customers),
         "--invoices", str(invoices), "--latency-ms", str(latency_ms),
         "--client-id", "bench", "--client-secret", secret],
        env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    _wait_for(f"{base}/.well-known/openid_configuration", process, timeout=1800)
    return Emulator(process, base, secret)


def add_company(emulator: Emulator, realm_id: str) -> dict:
    """Another company generated like the emulator's own (same seed, same size)."""
    return emulator.admin("POST", "companies", json={"realm_id": realm_id})


def mint_grant(emulator: Emulator, realm_id: str) -> Grant:
    """Consent for `realm_id` and a code exchange, as a user's browser and an app would."""
    emulator.admin("POST", "consent", json={"realm_id": realm_id})
    query = {"client_id": "bench", "response_type": "code", "scope": SCOPE,
             "state": "peers", "redirect_uri": CALLBACK}  # fmt: skip
    consent = httpx.get(f"{emulator.base_url}/connect/oauth2?{urlencode(query)}", timeout=30)
    callback = parse_qs(urlsplit(consent.headers["location"]).query)
    basic = base64.b64encode(f"bench:{emulator.secret}".encode()).decode()
    response = httpx.post(
        f"{emulator.base_url}/oauth2/v1/tokens/bearer",
        data={"grant_type": "authorization_code", "code": callback["code"][0],
              "redirect_uri": CALLBACK},
        headers={"Authorization": f"Basic {basic}"},
        timeout=30,
    )  # fmt: skip
    response.raise_for_status()
    body = response.json()
    return Grant(callback["realmId"][0], body["access_token"], body["refresh_token"],
                 body["expires_in"])  # fmt: skip


def start_date(emulator: Emulator, grant: Grant) -> str:
    """The day before the company's oldest LastUpdatedTime, as a user would pick "since
    the company started": an earlier date only adds empty 30-day windows to Airbyte's run."""
    oldest = []
    for entity, where in (("Customer", " WHERE Active IN (true, false)"), ("Invoice", "")):
        query = f"SELECT * FROM {entity}{where} ORDER BY Metadata.LastUpdatedTime ASC MAXRESULTS 1"
        response = httpx.get(
            f"{emulator.base_url}/v3/company/{grant.realm_id}/query",
            params={"query": query},
            headers={"Authorization": f"Bearer {grant.access_token}", "Accept": "application/json"},
            timeout=60,
        )
        response.raise_for_status()
        [row] = response.json()["QueryResponse"][entity]
        oldest.append(datetime.fromisoformat(row["MetaData"]["LastUpdatedTime"]))
    day = min(oldest).date() - timedelta(days=1)
    return f"{day.isoformat()}T00:00:00Z"


def realm_stats(emulator: Emulator, realm_id: str) -> dict:
    return emulator.admin("GET", "stats")["realms"].get(realm_id, {})


# Measuring a child


def measure_child(
    command: list[str], env: dict[str, str], log: Path, on_line: Callable[[bytes], None]
) -> tuple[float, float, float, int]:
    """Run `command`, hand each stdout line to `on_line` as it comes (nothing is kept), and
    reap it with wait4 so its rusage is its own. Returns wall seconds, CPU seconds, peak
    RSS in MiB and the exit code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
    assert process.stdout is not None
    for line in process.stdout:
        on_line(line)
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, cpu, usage.ru_maxrss / 1024, process.returncode


class RecordCounter:
    """Counts RECORD messages per stream, and distinct Ids, from a peer's stdout."""

    def __init__(self, record: Callable[[dict], tuple[str, str] | None]) -> None:
        self.record = record
        self.counts: collections.Counter[str] = collections.Counter()
        self.ids: dict[str, set[str]] = collections.defaultdict(set)
        # Airbyte reports its errors on stdout (TRACE and LOG messages), not stderr.
        self.last_other: collections.deque[str] = collections.deque(maxlen=5)

    def __call__(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        found = self.record(message) if isinstance(message, dict) else None
        if found:
            stream, entity_id = found
            self.counts[stream] += 1
            self.ids[stream].add(entity_id)
        else:
            self.last_other.append(line.decode(errors="replace").strip()[:500])


def singer_record(message: dict) -> tuple[str, str] | None:
    if message.get("type") != "RECORD":
        return None
    return message["stream"], str(message["record"].get("Id"))


def airbyte_record(message: dict) -> tuple[str, str] | None:
    if message.get("type") != "RECORD":
        return None
    record = message["record"]
    return record["stream"], str(record["data"].get("Id"))


class SetupFailed(RuntimeError):
    """A step before the measured run (discovery, connecting) failed; says how."""


def setup_step(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run an unmeasured step; on failure raise with the end of its stderr, since that is
    what says why."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.splitlines()[-8:])
        raise SetupFailed(f"{Path(command[0]).name} {command[1]} exited {done.returncode}:\n{tail}")
    return done


def _tail(log: Path, lines: int = 8) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# The peers' configs, catalogs and runs


def peer_env(emulator: Emulator) -> dict[str, str]:
    """Their stdout stays a buffered pipe, as under Singer's runners and Airbyte's platform."""
    return {**_clean_env(), REDIRECT_VARIABLE: emulator.base_url}


def tap_files(
    peer: Peer, folder: Path, grant: Grant, secret: str, since: str, env: dict[str, str]
) -> list[str]:
    """tap-quickbooks' config, and its discovered catalog with only our two streams
    selected. Returns the sync command."""
    config = folder / "tap-config.json"
    config.write_text(json.dumps({
        "start_date": since, "user_agent": "qbo-pipeline peers benchmark",
        "realm_id": grant.realm_id, "client_id": "bench", "client_secret": secret,
        "refresh_token": grant.refresh_token, "sandbox": False,
    }))  # fmt: skip
    discovered = setup_step([str(peer.bin), "--config", str(config), "--discover"], env)
    catalog = json.loads(discovered.stdout)
    catalog["streams"] = [s for s in catalog["streams"] if s["tap_stream_id"] in STREAMS]
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = True
    selected = folder / "tap-catalog.json"
    selected.write_text(json.dumps(catalog))
    return [str(peer.bin), "--config", str(config), "--catalog", str(selected)]


def airbyte_files(
    peer: Peer, folder: Path, grant: Grant, secret: str, since: str, env: dict[str, str]
) -> list[str]:
    """The Airbyte source's config (an expired access token, so it refreshes as the tap
    does), and a configured catalog of our two streams in their default incremental
    mode. Returns the read command."""
    config = folder / "airbyte-config.json"
    config.write_text(json.dumps({
        "realm_id": grant.realm_id, "client_id": "bench", "client_secret": secret,
        "refresh_token": grant.refresh_token, "access_token": "expired",
        "token_expiry_date": "2000-01-01T00:00:00Z", "start_date": since, "sandbox": False,
    }))  # fmt: skip
    discovered = setup_step([str(peer.bin), "discover", "--config", str(config)], env)
    [catalog] = [
        message["catalog"]
        for message in map(json.loads, discovered.stdout.splitlines())
        if message.get("type") == "CATALOG"
    ]
    configured = {
        "streams": [
            {"stream": stream, "sync_mode": "incremental", "destination_sync_mode": "append",
             "cursor_field": stream["default_cursor_field"]}
            for stream in catalog["streams"] if stream["name"] in STREAMS
        ]
    }  # fmt: skip
    path = folder / "airbyte-catalog.json"
    path.write_text(json.dumps(configured))
    return [str(peer.bin), "read", "--config", str(config), "--catalog", str(path)]


TAP = Peer(
    name="tap-quickbooks",
    package="tap-quickbooks",
    version="2.5.0",
    executable="tap-quickbooks",
    related=("singer-python", "requests"),
    page_size="1,000 rows a query (max_results), Customer and Invoice in one POST /batch",
    prepare=tap_files,
    record=singer_record,
)
AIRBYTE = Peer(
    name="airbyte-source-quickbooks",
    package="airbyte-source-quickbooks",
    version="4.0.4",
    executable="source-quickbooks",
    related=("airbyte-cdk", "requests"),
    page_size="200 rows a GET /query (max_results), one stream at a time, 30-day windows",
    prepare=airbyte_files,
    record=airbyte_record,
)


def run_peer(peer: Peer, version: str, emulator: Emulator, realm_id: str, folder: Path) -> Run:
    """Set the peer up (discovery unmeasured), then measure its sync of the two streams."""
    grant = mint_grant(emulator, realm_id)
    since = start_date(emulator, grant)
    print(f"  start_date {since}", flush=True)
    env = peer_env(emulator)
    command = peer.prepare(peer, folder, grant, emulator.secret, since, env)
    records = RecordCounter(peer.record)
    emulator.admin("POST", "stats/reset")
    log = LOGS_DIR / f"{peer.name}.stderr"
    seconds, cpu, peak, code = measure_child(command, env, log, records)
    stats = realm_stats(emulator, realm_id)
    run = Run(peer.name, version, seconds, cpu, peak, code, stats.get("requests", 0),
              stats.get("batch_items", 0), dict(records.counts),
              {s: len(ids) for s, ids in records.ids.items()}, emulator=stats)  # fmt: skip
    if code != 0:
        run.error = "\n".join([_tail(log), *records.last_other])
    return run


# Our sync


def our_version() -> str:
    from importlib.metadata import version

    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    changed = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    tree = f"{head}, uncommitted changes" if changed else head
    return f"{version('qbo-pipeline')} ({tree or 'no git'})"


def warehouse_rows(state_dir: Path, realm_id: str) -> dict[str, int]:
    """Rows our sync wrote for the realm, read after it exited."""
    import duckdb

    with duckdb.connect(str(state_dir / "warehouse.duckdb"), read_only=True) as db:
        return {
            table: db.execute(
                f"SELECT count(*) FROM qbo.{table} WHERE realm_id = ?", [realm_id]
            ).fetchone()[0]
            for table in ("customers", "invoices", "invoice_lines")
        }


def sync_phases(log: Path) -> dict[str, float]:
    """Each entity's sync time as our sync logs it ("Customer: full sync wrote ... in 1.5
    s"): the rest of the wall time is start-up (Python, Dagster, its run storage)."""
    found = re.findall(r"(\w+): full sync wrote .* in ([\d.]+) s", log.read_text(errors="replace"))
    return {entity: float(seconds) for entity, seconds in found}


def run_ours(emulator: Emulator, realm_id: str, state_dir: Path) -> Run:
    """Connect the company in a process of its own (not measured), then measure
    `qbo-pipeline sync` for it in a fresh one."""
    from qbo_pipeline.vault.crypto import generate_key

    env = {
        **_clean_env(),
        "QUICKBOOKS_CLIENT_ID": "bench",
        "QUICKBOOKS_CLIENT_SECRET": emulator.secret,
        "QUICKBOOKS_DISCOVERY_URL": f"{emulator.base_url}/.well-known/openid_configuration",
        "QUICKBOOKS_API_BASE_URL": emulator.base_url,
        "QBO_TOKEN_KEY": generate_key(),
        "QBO_STATE_DIR": str(state_dir),
    }
    grant = mint_grant(emulator, realm_id)
    setup_step(
        [CLI, "auth", "set-tokens", "--realm", grant.realm_id, "--access-token",
         grant.access_token, "--refresh-token", grant.refresh_token,
         "--expires-in", str(grant.expires_in)],
        env,
    )  # fmt: skip
    emulator.admin("POST", "stats/reset")
    log = LOGS_DIR / "qbo-pipeline.stderr"
    seconds, cpu, peak, code = measure_child(
        [CLI, "sync", "--realm", realm_id], env, log, lambda line: None
    )
    stats = realm_stats(emulator, realm_id)
    run = Run("qbo-pipeline sync", our_version(), seconds, cpu, peak, code,
              stats.get("requests", 0), stats.get("batch_items", 0), emulator=stats)  # fmt: skip
    run.phases = sync_phases(log)
    if code != 0:
        run.error = _tail(log)
        return run
    rows = warehouse_rows(state_dir, realm_id)
    run.records = {"customers": rows["customers"], "invoices": rows["invoices"]}
    run.distinct = dict(run.records)  # one row per Id: the tables' keys
    run.lines = rows["invoice_lines"]
    return run


# The report


def data_pages(customers: int, invoices: int) -> int:
    """Pages of QBO's largest page (1000 rows) the two entities take: the fewest requests."""
    return math.ceil(customers / 1000) + math.ceil(invoices / 1000)


def records_cell(run: Run, expected: dict[str, int]) -> str:
    counts = " + ".join(f"{run.records.get(s, 0):,}" for s in STREAMS)
    missing = {s: expected[s] - run.distinct.get(s, 0) for s in STREAMS}
    repeated = sum(run.records.get(s, 0) - run.distinct.get(s, 0) for s in STREAMS)
    verdict = (
        "all"
        if not any(missing.values())
        else "MISSING " + ", ".join(f"{n:,} {s}" for s, n in missing.items() if n)
    )
    if repeated:
        verdict += f", {repeated:,} repeated"
    lines = f", {run.lines:,} lines" if run.lines else ""
    return f"{counts} ({verdict}{lines})"


def table(runs: list[Run], expected: dict[str, int]) -> str:
    pages = data_pages(expected["customers"], expected["invoices"])
    rows = [
        "| tool | version | wall time | requests | requests / data pages | CPU seconds "
        "| peak RSS MiB | records (customers + invoices) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        if run.exit_code != 0:
            failed = "setup" if run.exit_code < 0 else f"exit {run.exit_code}"
            rows.append(f"| {run.tool} | {run.version} | FAILED ({failed}) | | | | | |")
            continue
        requests = f"{run.requests:,}"
        if run.batch_items:
            requests += f" ({run.batch_items:,} batch items)"
        rows.append(
            f"| {run.tool} | {run.version} | {run.seconds:.1f} s | {requests} "
            f"| {run.requests / pages:.2f} | {run.cpu_seconds:.1f} | {run.peak_mib:.0f} "
            f"| {records_cell(run, expected)} |"
        )
    return "\n".join(rows)


def emulator_note(run: Run) -> str:
    """What else the emulator saw of the run: 429s, concurrency, CDC and count queries."""
    stats = run.emulator
    reasons = {k: n for k, n in stats.get("throttled_by_reason", {}).items() if n}
    why = f" (by {', '.join(f'{k} {n}' for k, n in reasons.items())})" if reasons else ""
    note = (f"{stats.get('throttled', 0)} answered 429{why}, peak "
            f"{stats.get('peak_in_flight', 0)} in flight, peak "
            f"{stats.get('peak_per_second', '?')} in a second, {stats.get('cdc_calls', 0)} "
            f"CDC calls, {stats.get('count_queries', 0)} count queries")  # fmt: skip
    if run.phases:
        own = ", ".join(f"{entity} {seconds:.1f} s" for entity, seconds in run.phases.items())
        note += f"; its log's sync times: {own} (the rest of the wall time is start-up)"
    return note


def versions_cell(versions: dict[str, str]) -> str:
    first, *rest = versions.items()
    return f"{first[1]} ({', '.join(f'{k} {v}' for k, v in rest)})"


def attempt(tool: str, version: str, run: Callable[..., Run], *args: object) -> Run:
    """`run(*args)`, or a failed Run saying which setup step broke: one tool that cannot
    run must not hide the others' figures."""
    try:
        return run(*args)
    except SetupFailed as error:
        return Run(tool, version, 0.0, 0.0, 0.0, exit_code=-1, error=str(error))


def measure(customers: int, invoices: int, latency_ms: int) -> tuple[list[Run], dict[str, int]]:
    """Install the peers, start one emulator, and run the three tools one after another."""
    versions = {peer.name: versions_cell(ensure_peer(peer)) for peer in (TAP, AIRBYTE)}
    for name, version in versions.items():
        print(f"{name} {version}", flush=True)
    emulator = start_emulator(customers, invoices, latency_ms)
    try:
        [ours] = emulator.admin("GET", "companies")
        expected = {"customers": ours["customers"], "invoices": ours["invoices"]}
        runs = []
        with tempfile.TemporaryDirectory(prefix="qbo-peers-") as folder:
            for number, peer in enumerate((TAP, AIRBYTE), start=1):
                realm = add_company(emulator, f"{ours['realm_id']}{number}")["realm_id"]
                print(f"running {peer.name} on realm {realm}", flush=True)
                runs.append(
                    attempt(peer.name, versions[peer.name], run_peer, peer, versions[peer.name],
                            emulator, realm, Path(folder))
                )  # fmt: skip
            print(f"running qbo-pipeline sync on realm {ours['realm_id']}", flush=True)
            runs.append(
                attempt("qbo-pipeline sync", our_version(), run_ours, emulator,
                        ours["realm_id"], Path(folder) / "state")
            )  # fmt: skip
        return runs, expected
    finally:
        emulator.process.terminate()
        emulator.process.wait(timeout=60)


def _load() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--invoices", type=int, default=INVOICES)
    parser.add_argument("--latency-ms", type=int, default=LATENCY_MS)
    parser.add_argument("--quick", action="store_true", help="2,000 customers + 4,000 invoices")
    args = parser.parse_args(argv)
    customers, invoices = (
        (QUICK_CUSTOMERS, QUICK_INVOICES) if args.quick else (args.customers, args.invoices)
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; {customers:,} customers "
          f"+ {invoices:,} invoices, {args.latency_ms} ms a page of 1000", flush=True)  # fmt: skip
    print(f"load average before: {_load()}", flush=True)
    runs, expected = measure(customers, invoices, args.latency_ms)
    # Wall times are only as good as the machine was quiet: say how busy it was.
    print(f"load average after: {_load()}")
    print()
    print(table(runs, expected))
    print()
    print(f"data pages = ceil(customers/1000) + ceil(invoices/1000) = "
          f"{data_pages(customers, invoices)}; QBO's largest page is 1000 rows.")  # fmt: skip
    for peer in (TAP, AIRBYTE):
        print(f"{peer.name} page size: {peer.page_size}")
    for run in runs:
        if run.exit_code == 0:
            print(f"{run.tool}: {emulator_note(run)}")
    for run in runs:
        if run.error:
            print(f"\n{run.tool} failed (exit {run.exit_code}); the end of what it said:")
            print(run.error)
    return 0 if all(run.exit_code == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

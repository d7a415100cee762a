"""The attacks and abuse a reviewer would try, each against the real service or store.

Read top to bottom:

1. Grants: an edited callback, a link for one company used for another, a forged
   id_token, tokens pasted for the wrong company. None may store a token under a realm it
   does not open, and none may replace an active connection it was not meant to.
2. A token endpoint that never answers: nothing else waits for it.
3. Input: realm ids, bodies (size, nesting, speed), numbers, headers, log lines.
4. Query text built from stored ids.
5. Broken storage: a corrupt token store, a locked one.

Every refusal is one line, and no answer, log line or error holds a token.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from qbo_pipeline.emulator import query as qbo_grammar
from qbo_pipeline.errors import BadRequest
from qbo_pipeline.quickbooks.catalog import CUSTOMER, INVOICE
from qbo_pipeline.quickbooks.oauth import IdTokenRejected
from qbo_pipeline.quickbooks.query import select_by_ids, string_literal
from qbo_pipeline.quickbooks.realms import check_realm_id, is_realm_id
from qbo_pipeline.service.app import printable
from qbo_pipeline.service.auth import MAX_BODY
from qbo_pipeline.service.errors import GENERIC, classify
from qbo_pipeline.service.server import ServiceServer
from qbo_pipeline.sync.deletes import read_by_ids
from qbo_pipeline.vault import (
    ConnectionStatus,
    RefreshLockTimeout,
    StoreBusy,
    fingerprint,
    generate_key,
    open_database,
)
from qbo_pipeline_tests.command import CLI, clean_env
from qbo_pipeline_tests.service.conftest import CLIENT_ID, PREFIX, Stack, follow_to_callback

ADMIN_REALMS = iter(range(700000000000001, 700000000001000))


def one_line(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"] if "json" in response.headers["content-type"] else ""
    message = message or response.text.split("<p>")[1].split("</p>")[0]
    assert message and "\n" not in message and "Traceback" not in response.text
    return message


def emulator_admin(stack: Stack, method: str, path: str, body: dict | None = None) -> dict:
    response = httpx.request(method, f"{stack.emulator.base_url}/_emulator/{path}", json=body)
    response.raise_for_status()
    return response.json()


def another_company(stack: Stack) -> str:
    """A second company in the emulator, which the user will pick on Intuit's page."""
    realm = str(next(ADMIN_REALMS))
    emulator_admin(stack, "POST", "companies", {"realm_id": realm, "customers": 2, "invoices": 2})
    return realm


def consent_to(stack: Stack, realm: str) -> None:
    emulator_admin(stack, "POST", "consent", {"realm_id": realm})


def callback_location(stack: Stack, authorize_query: str = "") -> str:
    """Start a connect flow at our service and play the user at Intuit's consent page:
    the callback URL Intuit redirects the browser to."""
    started = httpx.get(
        f"{stack.server.base_url}{PREFIX}/authorize{authorize_query}", headers=stack.admin
    )
    assert started.status_code == 302, started.text
    return follow_to_callback(started.headers["location"])


def with_realm(location: str, realm: str) -> str:
    """The callback URL with its realmId edited, as an attacker in the middle would."""
    parts = urlsplit(location)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query["realmId"] = realm
    return urlunsplit(parts._replace(query=urlencode(query)))


def connect_default(stack: Stack) -> None:
    consent_to(stack, stack.realm_id)
    page = httpx.get(callback_location(stack))
    assert page.status_code == 200, page.text


def stored_fingerprints(stack: Stack, realm: str) -> tuple[str, str]:
    tokens = stack.runtime.store.decrypt(realm)
    return fingerprint(tokens.access_token), fingerprint(tokens.refresh_token)


# --- 1. Grants ---------------------------------------------------------------------------


def test_an_edited_callback_realm_cannot_replace_a_connected_company(service: Stack) -> None:
    """The reported attack: company A is connected; a fresh flow for company B comes back
    with realmId edited to A. A's grant (Intuit gives a refresh token out once) stays."""
    connect_default(service)
    a = service.realm_id
    before = stored_fingerprints(service, a)
    b = another_company(service)
    consent_to(service, b)

    page = httpx.get(with_realm(callback_location(service), a))

    assert "already connected" in one_line(page, 409)
    assert stored_fingerprints(service, a) == before
    assert service.runtime.store.get(a).status is ConnectionStatus.ACTIVE
    assert service.runtime.store.find(b) is None


def test_an_edited_callback_realm_is_caught_by_the_signed_id_token(service: Stack) -> None:
    """A is not active (it needs reconnecting), so the flow reaches Intuit: the grant is
    B's, as Intuit's signed id_token says, and nothing is stored under A."""
    connect_default(service)
    a = service.realm_id
    service.runtime.store.mark_needs_reauth(a, "invalid_grant")
    before = stored_fingerprints(service, a)
    b = another_company(service)
    consent_to(service, b)

    page = httpx.get(with_realm(callback_location(service), a))

    message = one_line(page, 400)
    assert f"not for QuickBooks company {a}" in message and f"names company {b}" in message
    assert stored_fingerprints(service, a) == before
    assert service.runtime.store.get(a).status is ConnectionStatus.NEEDS_REAUTH
    assert service.runtime.store.find(b) is None


def test_a_link_issued_for_one_company_completes_for_it_alone(service: Stack) -> None:
    connect_default(service)
    a = service.realm_id
    before = stored_fingerprints(service, a)
    b = another_company(service)
    consent_to(service, b)

    page = httpx.get(callback_location(service, f"?realmId={a}"))

    message = one_line(page, 400)
    assert f"reconnect QuickBooks company {a}" in message and f"company {b} was chosen" in message
    assert stored_fingerprints(service, a) == before
    assert service.runtime.store.find(b) is None

    consent_to(service, a)  # the user picks the right company: the reconnect goes through
    page = httpx.get(callback_location(service, f"?realmId={a}"))
    assert page.status_code == 200, page.text
    assert stored_fingerprints(service, a) != before


def test_tokens_pasted_for_the_wrong_company_are_refused_by_companyinfo(service: Stack) -> None:
    """set-tokens has no id_token: QBO itself answers companyinfo only for the company the
    token opens, and refuses the other with a 403."""
    b = another_company(service)
    with service.oauth() as oauth:
        consent_to(service, b)
        code = parse_qs(urlsplit(follow_to_callback(oauth.authorization_url("x"))).query)
        tokens = oauth.exchange_code(code["code"][0], b)
    body = {
        "realmId": service.realm_id,
        "access_token": tokens.access_token,
        "QUICKBOOKS_REFRESH_TOKEN": tokens.refresh_token,
        "expires_in": 3600,
    }
    response = httpx.post(
        f"{service.server.base_url}{PREFIX}/set-tokens", json=body, headers=service.admin
    )
    message = one_line(response, 400)
    assert "403" in message and tokens.access_token not in response.text
    assert service.runtime.store.list() == []


def id_token(stack: Stack, *, forged: bool = False, **claims: object) -> str:
    """An id_token as Intuit (the emulator) would sign it, with `claims` changed; or, if
    `forged`, signed with a key of our own under Intuit's key id."""
    now = int(time.time())
    payload = {
        "iss": f"{stack.emulator.base_url}/op/v1",
        "aud": [CLIENT_ID],
        "sub": "someone",
        "realmid": stack.realm_id,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    intuit_key = stack.emulator.state.signing_key
    if not forged:
        return intuit_key.sign(payload)
    own_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(payload, own_key, algorithm="RS256", headers={"kid": intuit_key.kid})


def test_intuits_own_id_token_names_the_company(stack: Stack) -> None:
    with stack.oauth() as oauth:
        assert oauth.id_token_realm(id_token(stack)) == stack.realm_id


@pytest.mark.parametrize(
    "forgery",
    [
        {"forged": True},
        {"aud": ["another-app"]},
        {"iss": "https://evil.example/op/v1"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"realmid": ""},
    ],
    ids=["not-intuits-key", "another-app", "another-issuer", "expired", "no-realm"],
)
def test_an_id_token_not_signed_by_intuit_for_this_app_is_refused(
    stack: Stack, forgery: dict
) -> None:
    with stack.oauth() as oauth, pytest.raises(IdTokenRejected) as caught:
        oauth.id_token_realm(id_token(stack, **forgery))
    assert "\n" not in str(caught.value) and "nothing was saved" in str(caught.value)


# --- 2. A token endpoint that never answers ------------------------------------------------


def test_a_hung_token_endpoint_delays_nothing_but_its_own_realm(service: Stack) -> None:
    """On SQLite a refresh used to hold the database's write lock while Intuit answered,
    so one hung realm stalled every callback, authorize and other realm's refresh."""
    connect_default(service)
    a = service.realm_id
    b = another_company(service)
    consent_to(service, b)
    assert httpx.get(callback_location(service)).status_code == 200
    emulator_admin(service, "POST", "oauth/stall", {"realm_id": a, "seconds": None})
    hung: list[httpx.Response] = []
    refresh_a = threading.Thread(
        target=lambda: hung.append(
            httpx.post(
                f"{service.server.base_url}{PREFIX}/refresh",
                json={"realmId": a},
                headers=service.admin,
                timeout=60,
            )
        )
    )
    refresh_a.start()
    try:
        while emulator_admin(service, "GET", "oauth/stall")["held"] < 1:
            time.sleep(0.02)  # A's refresh is now waiting on Intuit, lease taken

        started = time.monotonic()
        authorize = httpx.get(
            f"{service.server.base_url}{PREFIX}/authorize", headers=service.admin, timeout=10
        )
        authorize_seconds = time.monotonic() - started
        started = time.monotonic()
        refresh_b = httpx.post(
            f"{service.server.base_url}{PREFIX}/refresh",
            json={"realmId": b},
            headers=service.admin,
            timeout=10,
        )
        refresh_b_seconds = time.monotonic() - started
        assert refresh_a.is_alive() and not hung
    finally:
        emulator_admin(service, "DELETE", "oauth/stall")
        refresh_a.join(timeout=60)

    assert authorize.status_code == 302 and authorize_seconds < 2
    assert refresh_b.status_code == 200 and refresh_b_seconds < 2
    assert [response.status_code for response in hung] == [200]  # A completes once released


# --- 3. Input ------------------------------------------------------------------------------


@given(st.text(max_size=80))
def test_a_realm_id_is_accepted_only_whole(text: str) -> None:
    """`3333\\n` once passed a `re.match(...$)` check and became a Dagster partition key.
    Only ASCII digits pass: no separator, quote or partition delimiter (`|`, `,`) can ride
    along into a file name, SQL value or partition key."""
    expected = 1 <= len(text) <= 32 and set(text) <= set("0123456789")
    assert is_realm_id(text) is expected
    if not expected:
        with pytest.raises(BadRequest):
            check_realm_id(text)


@pytest.mark.parametrize(
    "realm", ["3333\n", "3333\r\nX: y", "a/b", "1" * 33, "'; DROP", "realm-b", "12|34", "１２"]
)
def test_bad_realm_ids_are_refused_at_every_entry_point(stack: Stack, client, realm: str) -> None:
    admin = stack.admin
    answers = [
        client.get(f"{PREFIX}/status", params={"realmId": realm}, headers=admin),
        client.get(f"{PREFIX}/authorize", params={"realmId": realm}, headers=admin),
        client.post(f"{PREFIX}/refresh", json={"realmId": realm}, headers=admin),
        client.post(f"{PREFIX}/revoke", json={"realmId": realm}, headers=admin),
        client.post(
            f"{PREFIX}/set-tokens",
            json={"realmId": realm, "access_token": "a", "QUICKBOOKS_REFRESH_TOKEN": "r"},
            headers=admin,
        ),
    ]
    for answer in answers:
        assert "realmId must be" in one_line(answer, 400)
    assert stack.runtime.store.list() == [] and stack.token_calls() == 0


def test_deeply_nested_json_is_a_400_not_a_500(stack: Stack, client) -> None:
    depth = MAX_BODY // 2 - 1  # as deep as fits under the cap: Python's parser recurses
    body = "[" * depth + "]" * depth
    for endpoint in ("refresh", "set-tokens", "revoke", "exchange-code"):
        response = client.post(
            f"{PREFIX}/{endpoint}",
            content=body,
            headers={**stack.admin, "Content-Type": "application/json"},
        )
        assert "JSON object" in one_line(response, 400)


@pytest.mark.parametrize("expires_in", [10**14, -1, 2.5, True, "3600"])
def test_an_absurd_expires_in_is_a_400(stack: Stack, client, expires_in: object) -> None:
    body = {
        "realmId": stack.realm_id,
        "access_token": "a",
        "QUICKBOOKS_REFRESH_TOKEN": "r",
        "expires_in": expires_in,
    }
    response = client.post(f"{PREFIX}/set-tokens", json=body, headers=stack.admin)
    assert "expires_in must be" in one_line(response, 400)
    assert stack.token_calls() == 0


def raw_exchange(server: ServiceServer, request: bytes, *, wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received and b'"}' in received:
                break
    return received


def test_a_declared_body_over_the_cap_is_refused_before_it_is_sent(service: Stack) -> None:
    head = (
        f"POST {PREFIX}/refresh HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {service.admin_token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * MAX_BODY}\r\n\r\n"
    ).encode()
    answer = raw_exchange(service.server, head)  # not one byte of the body is sent
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"larger than" in answer


def test_a_streamed_body_over_the_cap_is_cut_off(service: Stack) -> None:
    def chunks():
        for _ in range(200):
            yield b"x" * 4096

    response = httpx.post(
        f"{service.server.base_url}{PREFIX}/refresh",
        content=chunks(),
        headers={**service.admin, "Content-Type": "application/json"},
    )
    assert "larger than" in one_line(response, 413)


def test_headers_trickled_byte_by_byte_get_the_connection_closed() -> None:
    """A slowloris client held a connection for 40 s; headers now have a deadline."""
    server = ServiceServer("127.0.0.1", 0, header_timeout=1.0)
    from starlette.applications import Starlette

    server.start(Starlette())
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            closed_after = None
            started = time.monotonic()
            for _ in range(50):
                try:
                    sock.sendall(b"X-a: b\r\n")
                except OSError:
                    closed_after = time.monotonic() - started
                    break
                sock.settimeout(0.2)
                try:
                    if sock.recv(1) == b"":
                        closed_after = time.monotonic() - started
                        break
                except TimeoutError:
                    pass
    finally:
        server.stop()
    assert closed_after is not None and closed_after < 5


def test_every_answer_forbids_sniffing_framing_and_scripts(stack: Stack, client) -> None:
    answers = [
        client.get(f"{PREFIX}/callback", params={"state": "x", "code": "y", "realmId": "1"}),
        client.get(f"{PREFIX}/connections", headers=stack.admin),
        client.get(f"{PREFIX}/connections"),
    ]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_a_request_path_cannot_write_a_log_line(
    service: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="qbo_pipeline.service.access"):
        httpx.get(
            f"{service.server.base_url}{PREFIX}/x%0A2026-01-01 INFO forged: admin logged in"
            "%0D%1B[31m"
        )
        time.sleep(0.1)
    [line] = [r.getMessage() for r in caplog.records if "forged" in r.getMessage()]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line


@given(st.text())
def test_printable_leaves_no_control_character(text: str) -> None:
    shown = printable(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)


# --- 4. Query text built from stored ids ----------------------------------------------------


@given(st.text(min_size=1, max_size=40))
def test_any_id_is_one_literal_in_qbos_grammar(entity_id: str) -> None:
    """The reconciliation once quoted stored ids without escaping: an id holding a quote
    ended the literal. Parsed by the emulator's QBO grammar, every id stays one value."""
    statement = qbo_grammar.parse(select_by_ids(CUSTOMER, [entity_id, "7"]))
    active, condition = statement.where  # name-lists: Active IN (true, false) first
    assert active.operator == "IN" and active.values == (True, False)
    assert condition.operator == "IN" and condition.values == (entity_id, "7")
    assert string_literal(entity_id).startswith("'")


def test_a_hostile_stored_id_is_never_part_of_a_query(connect) -> None:
    """Ids come from the warehouse, which anyone with write access can edit: one that no
    QBO transaction can have is not asked about (so counts as deleted), the rest are."""
    company = connect(customers=3, invoices=4)
    hostile = ["2') OR Id > ('0", "x\\' y", "3\n"]
    with company.quick_client() as api:
        found = list(read_by_ids(api, INVOICE, ["1", *hostile, "999999"]))
    assert [[row["Id"] for row in page] for page in found] == [["1"]]
    realm_stats = company.admin("stats")["realms"][company.realm_id]  # type: ignore[index]
    assert realm_stats["by_status"] == {"200": realm_stats["requests"]}  # no 4001 fault


# --- 5. Broken storage ----------------------------------------------------------------------


def test_a_corrupt_token_store_is_one_line_naming_the_file(tmp_path: Path) -> None:
    import subprocess

    store = tmp_path / "tokens.sqlite"
    store.write_bytes(b"this is not a database, it was overwritten by a backup script\n" * 64)
    env = {**clean_env(), "QBO_DATABASE_URL": f"sqlite:///{store}", "QBO_TOKEN_KEY": generate_key()}
    result = subprocess.run(
        [CLI, "auth", "connections"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "not a readable SQLite database" in line and str(store) in line
    assert "Traceback" not in result.stderr


def test_a_token_store_locked_by_another_process_is_busy_not_a_crash(tmp_path: Path) -> None:
    db = open_database(
        f"sqlite:///{tmp_path / 'tokens.sqlite'}", default_path=tmp_path, lock_timeout=0.2
    )
    with db.transaction() as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(tmp_path / "tokens.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreBusy) as caught, db.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
    finally:
        holder.rollback()
        holder.close()
    assert "\n" not in str(caught.value) and "retry" in str(caught.value)


def test_refusals_never_carry_a_token(service: Stack) -> None:
    """Tokens sent back at the service, as a caller's refresh token and as pasted tokens
    for a company they do not open: no answer repeats one."""
    connect_default(service)
    service.collect_tokens()
    base = f"{service.server.base_url}{PREFIX}"
    answers = [
        httpx.post(
            f"{base}/refresh",
            json={"realmId": service.realm_id, "QUICKBOOKS_REFRESH_TOKEN": token},
            headers=service.admin,
        )
        for token in sorted(service.known_tokens)
    ] + [
        httpx.post(
            f"{base}/set-tokens",
            json={"realmId": "1", "access_token": token, "QUICKBOOKS_REFRESH_TOKEN": token},
            headers=service.admin,
        )
        for token in sorted(service.known_tokens)
    ]
    service.collect_tokens()  # and those the refreshes above rotated to
    pasted = answers[len(answers) // 2 :]
    assert [answer.status_code for answer in pasted] == [400] * len(pasted)
    for answer in answers:
        for token in service.known_tokens:
            assert token not in answer.text


def test_expiry_instants_are_whole_seconds_from_intuits_answer() -> None:
    from qbo_pipeline.quickbooks.oauth import TokenSet

    received = datetime(2026, 1, 1, 12, 0, 0, 987654, tzinfo=UTC)
    body = {"access_token": "a", "refresh_token": "r", "expires_in": 3600,
            "x_refresh_token_hard_expires_in": 157680000}  # fmt: skip
    tokens = TokenSet.from_response(body, received_at=received)
    assert tokens.access_expires_at == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert tokens.refresh_hard_expires_at == received.replace(microsecond=0) + timedelta(
        seconds=157680000
    )
    for absurd in (10**14, -5, "soon", True):
        with pytest.raises(Exception, match="token response holds"):
            TokenSet.from_response({**body, "expires_in": absurd}, received_at=received)


def test_waiting_helps_is_a_503_and_a_bug_is_a_generic_500() -> None:
    """A busy token store or a lease another worker holds is worth a retry; a bug's
    details go to the log only."""
    busy = StoreBusy("the token store sqlite:///x stayed locked; retry in a moment")
    assert classify(busy) == (503, str(busy))
    assert classify(RefreshLockTimeout("1", 90)) == (503, str(RefreshLockTimeout("1", 90)))
    assert classify(KeyError("access_token")) == (500, GENERIC)

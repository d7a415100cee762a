"""ConnectionStore on SQLite and PostgreSQL: save, read, status, events, key rotation."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from qbo_pipeline.quickbooks.oauth import TokenSet
from qbo_pipeline.vault import (
    ConnectionStatus,
    ConnectionStore,
    DecryptionError,
    EventKind,
    KeyRing,
    UnknownKeyId,
    UnknownRealm,
    VaultError,
    fingerprint,
    generate_key,
)
from qbo_pipeline_tests.vault.storage import dump_storage


def token_set(realm_id: str | None = "123", *, tag: str = "a") -> TokenSet:
    now = datetime.now(UTC)
    return TokenSet(
        access_token=f"eyJ-access-{tag}-{os.urandom(8).hex()}",
        refresh_token=f"RT1-refresh-{tag}-{os.urandom(8).hex()}",
        access_expires_at=now + timedelta(hours=1),
        refresh_expires_at=now + timedelta(days=101),
        refresh_hard_expires_at=None,
        realm_id=realm_id,
    )


def test_save_get_decrypt_list(store: ConnectionStore) -> None:
    tokens = token_set()
    saved = store.save_tokens("123", tokens, organization_id="org-1")
    assert saved.status is ConnectionStatus.ACTIVE
    assert saved.key_id == "k1"
    assert saved.organization_id == "org-1"
    assert saved.expires_at.tzinfo == UTC
    assert abs(saved.expires_at - tokens.access_expires_at) < timedelta(milliseconds=1)
    assert store.get("123") == saved
    decrypted = store.decrypt("123")
    assert decrypted.access_token == tokens.access_token
    assert decrypted.refresh_token == tokens.refresh_token
    assert decrypted.refresh_hard_expires_at is None
    store.save_tokens("456", token_set("456"))
    assert [c.realm_id for c in store.list()] == ["123", "456"]
    assert [(e.realm_id, e.kind) for e in store.events()] == [
        ("123", EventKind.CONNECTED),
        ("456", EventKind.CONNECTED),
    ]


def test_save_replaces_and_reactivates(store: ConnectionStore) -> None:
    first = store.save_tokens("123", token_set(), organization_id="org-1")
    store.mark_needs_reauth("123", "Intuit OAuth error invalid_grant (HTTP 400)")
    newer = token_set(tag="b")
    second = store.save_tokens("123", newer)
    assert second.id == first.id
    assert second.created_at == first.created_at
    assert second.organization_id == "org-1"
    assert second.status is ConnectionStatus.ACTIVE
    assert second.last_error is None
    assert store.decrypt("123").refresh_token == newer.refresh_token


def test_tokens_for_another_realm_are_refused(store: ConnectionStore) -> None:
    with pytest.raises(VaultError, match="issued for realm 999 cannot be saved for realm 123"):
        store.save_tokens("123", token_set("999"))


def test_unknown_realm(store: ConnectionStore) -> None:
    message = (
        "no QuickBooks connection for realm 42; connect it with `qbo-pipeline auth authorize` "
        "or `qbo-pipeline auth set-tokens`"
    )
    for call in (store.get, store.decrypt, store.mark_revoked):
        with pytest.raises(UnknownRealm) as caught:
            call("42")
        assert str(caught.value) == message
    assert store.find("42") is None


def test_ciphertext_moved_to_another_realm_row_fails(store: ConnectionStore) -> None:
    store.save_tokens("111", token_set("111"))
    store.save_tokens("222", token_set("222"))
    with store.db.transaction() as tx:
        row = tx.one("SELECT access_token FROM qbo_connections WHERE realm_id = ?", ("111",))
        assert row is not None
        tx.execute(
            "UPDATE qbo_connections SET access_token = ? WHERE realm_id = ?",
            (row["access_token"], "222"),
        )
    with pytest.raises(DecryptionError, match="access token of realm 222 with key id k1"):
        store.decrypt("222")


def test_unknown_key_id_in_store(store: ConnectionStore) -> None:
    store.save_tokens("123", token_set())
    other = ConnectionStore(store.db, KeyRing({"k9": os.urandom(32)}), create_schema=False)
    with pytest.raises(UnknownKeyId, match="encrypted with key id 'k1', which is not in"):
        other.decrypt("123")


def test_key_rotation(store: ConnectionStore, keys_text: str) -> None:
    saved = {realm: token_set(realm) for realm in ("1", "2", "3")}
    for realm, tokens in saved.items():
        store.save_tokens(realm, tokens)
    new_key = generate_key()
    both = ConnectionStore(
        store.db, KeyRing.parse(f"k2:{new_key},{keys_text}"), create_schema=False
    )
    assert both.decrypt("2").access_token == saved["2"].access_token  # old key still works
    first = both.rotate_keys()
    assert (first.reencrypted, first.current, first.unreadable) == (["1", "2", "3"], [], {})
    again = both.rotate_keys()
    assert (again.reencrypted, again.current) == ([], ["1", "2", "3"])
    assert {c.key_id for c in both.list()} == {"k2"}
    new_only = ConnectionStore(store.db, KeyRing.parse(f"k2:{new_key}"), create_schema=False)
    for realm, tokens in saved.items():
        decrypted = new_only.decrypt(realm)
        assert (decrypted.access_token, decrypted.refresh_token) == (
            tokens.access_token,
            tokens.refresh_token,
        )
    with pytest.raises(UnknownKeyId, match="key id 'k2', which is not in QBO_TOKEN_KEYS"):
        store.decrypt("1")  # the old ring alone no longer opens anything
    rotated = [e for e in store.events() if e.kind is EventKind.KEY_ROTATED]
    assert [e.detail for e in rotated] == ["re-encrypted under key id k2 (was k1)"] * 3


def test_key_rotation_goes_past_a_realm_no_key_opens(
    store: ConnectionStore, keys_text: str
) -> None:
    """`keys rotate` once stopped at the first unreadable realm, leaving the rest on the
    old key: now every readable realm is done and the others are named."""
    for realm in ("1", "2", "3"):
        store.save_tokens(realm, token_set(realm))
    lost_key = ConnectionStore(store.db, KeyRing({"k0": os.urandom(32)}), create_schema=False)
    lost_key.save_tokens("2", token_set("2"))  # under a key nobody has any more
    new_key = generate_key()
    both = ConnectionStore(
        store.db, KeyRing.parse(f"k2:{new_key},{keys_text}"), create_schema=False
    )
    report = both.rotate_keys()
    assert report.reencrypted == ["1", "3"]
    assert list(report.unreadable) == ["2"]
    assert "key id 'k0'" in report.unreadable["2"] and "\n" not in report.unreadable["2"]
    assert [c.key_id for c in both.list()] == ["k2", "k0", "k2"]


def test_status_changes_and_event_cursor(store: ConnectionStore) -> None:
    store.save_tokens("123", token_set())
    cursor = store.events()[-1].id
    store.mark_needs_reauth("123", "Intuit OAuth error invalid_grant (HTTP 400)")
    connection = store.get("123")
    assert connection.status is ConnectionStatus.NEEDS_REAUTH
    assert connection.last_error == "Intuit OAuth error invalid_grant (HTTP 400)"
    store.mark_revoked("123")
    assert store.get("123").status is ConnectionStatus.REVOKED
    later = store.events(after_id=cursor)
    assert [e.kind for e in later] == [EventKind.INVALID_GRANT, EventKind.REVOKED]
    assert later[0].id < later[1].id
    assert later[0].occurred_at.tzinfo == UTC
    assert store.events(after_id=later[-1].id) == []
    assert store.events(realm_id="nope") == []


def test_no_plaintext_at_rest_and_no_tokens_in_reprs(store: ConnectionStore) -> None:
    tokens = token_set()
    store.save_tokens("123", tokens)
    store.mark_needs_reauth("123", "something went wrong")
    stored = dump_storage(store)
    assert b"qbo_connections" in stored or b"123" in stored
    for secret in (tokens.access_token, tokens.refresh_token):
        assert secret.encode() not in stored
    decrypted = store.decrypt("123")
    for shown in (
        repr(store.get("123")),
        str(store.get("123")),
        repr(decrypted),
        str(decrypted),
        repr(store),
        repr(store.events()),
    ):
        assert tokens.access_token not in shown
        assert tokens.refresh_token not in shown
    assert len(fingerprint(tokens.refresh_token)) == 8
    assert fingerprint(tokens.refresh_token) != fingerprint(tokens.access_token)

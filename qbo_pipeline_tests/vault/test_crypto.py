"""AES-256-GCM key ring: round trips, binding to realm and field, rotation, config errors."""

from __future__ import annotations

import base64
import os

import pytest

from qbo_pipeline.vault import (
    DecryptionError,
    KeyConfigurationError,
    KeyRing,
    UnknownKeyId,
    VaultError,
    generate_key,
)

SECRET = "eyJ-plaintext-access-token-0123456789"


def ring(**keys: bytes) -> KeyRing:
    return KeyRing(keys)


def test_round_trip_and_format() -> None:
    keyring = ring(k1=os.urandom(32))
    sealed = keyring.encrypt(SECRET, realm_id="123", field="access_token")
    version, kid, payload = sealed.split(":")
    assert (version, kid) == ("v1", "k1")
    assert SECRET not in sealed
    assert len(base64.urlsafe_b64decode(payload + "==")) == 12 + len(SECRET) + 16
    assert keyring.decrypt(sealed, realm_id="123", field="access_token") == SECRET


def test_nonces_are_random() -> None:
    keyring = ring(k1=os.urandom(32))
    first = keyring.encrypt(SECRET, realm_id="1", field="access_token")
    assert first != keyring.encrypt(SECRET, realm_id="1", field="access_token")


def test_wrong_key_fails_with_a_clear_message() -> None:
    sealed = ring(k1=os.urandom(32)).encrypt(SECRET, realm_id="123", field="access_token")
    with pytest.raises(DecryptionError) as caught:
        ring(k1=os.urandom(32)).decrypt(sealed, realm_id="123", field="access_token")
    assert str(caught.value) == (
        "cannot decrypt the access token of realm 123 with key id k1: wrong key or tampered data"
    )


def test_tampered_ciphertext_fails() -> None:
    keyring = ring(k1=os.urandom(32))
    sealed = keyring.encrypt(SECRET, realm_id="123", field="refresh_token")
    head, _, payload = sealed.rpartition(":")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[20] ^= 0x01
    tampered = f"{head}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"
    with pytest.raises(DecryptionError, match=r"refresh token of realm 123.*tampered"):
        keyring.decrypt(tampered, realm_id="123", field="refresh_token")
    with pytest.raises(DecryptionError, match="not a v1 ciphertext"):
        keyring.decrypt("garbage", realm_id="123", field="refresh_token")
    with pytest.raises(DecryptionError, match="too short"):
        keyring.decrypt("v1:k1:AAAA", realm_id="123", field="refresh_token")


def test_ciphertext_is_bound_to_realm_and_field() -> None:
    keyring = ring(k1=os.urandom(32))
    sealed = keyring.encrypt(SECRET, realm_id="123", field="access_token")
    with pytest.raises(DecryptionError, match="access token of realm 456"):
        keyring.decrypt(sealed, realm_id="456", field="access_token")
    with pytest.raises(DecryptionError, match="refresh token of realm 123"):
        keyring.decrypt(sealed, realm_id="123", field="refresh_token")


def test_unknown_key_id() -> None:
    sealed = ring(k0=os.urandom(32)).encrypt(SECRET, realm_id="9", field="access_token")
    with pytest.raises(UnknownKeyId) as caught:
        ring(k1=os.urandom(32)).decrypt(sealed, realm_id="9", field="access_token")
    assert "realm 9 was encrypted with key id 'k0', which is not in QBO_TOKEN_KEYS" in str(
        caught.value
    )


def test_rotation_old_key_decrypts_new_key_encrypts() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = ring(k1=old).encrypt(SECRET, realm_id="1", field="access_token")
    rotated = KeyRing({"k2": new, "k1": old})
    assert rotated.primary_kid == "k2"
    assert rotated.decrypt(before, realm_id="1", field="access_token") == SECRET
    after = rotated.encrypt(SECRET, realm_id="1", field="access_token")
    assert KeyRing.key_id_of(after) == "k2"
    assert ring(k2=new).decrypt(after, realm_id="1", field="access_token") == SECRET


def test_from_env_single_key_is_k1() -> None:
    key = generate_key()
    assert len(base64.b64decode(key)) == 32
    keyring = KeyRing.from_env({"QBO_TOKEN_KEY": key})
    assert keyring.key_ids == ("k1",)
    sealed = keyring.encrypt(SECRET, realm_id="1", field="access_token")
    same = KeyRing.from_env({"QBO_TOKEN_KEYS": f"k2:{generate_key()}, k1:{key}"})
    assert same.primary_kid == "k2"
    assert same.decrypt(sealed, realm_id="1", field="access_token") == SECRET


def test_url_safe_and_unpadded_keys_are_accepted() -> None:
    raw = b"\xfb" * 32
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert KeyRing.from_env({"QBO_TOKEN_KEY": text}).key_ids == ("k1",)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "QBO_TOKEN_KEY is not set; generate one with `qbo-pipeline keys generate`"),
        ({"QBO_TOKEN_KEY": "  "}, "QBO_TOKEN_KEY is not set"),
        (
            {"QBO_TOKEN_KEY": base64.b64encode(b"x" * 16).decode()},
            "QBO_TOKEN_KEY must be base64 of 32 bytes; got 16 bytes",
        ),
        ({"QBO_TOKEN_KEY": "not base64 at all!"}, "QBO_TOKEN_KEY must be base64 of 32 bytes"),
        ({"QBO_TOKEN_KEYS": "k1"}, "entry 1 of QBO_TOKEN_KEYS must look like kid:base64key"),
        (
            {"QBO_TOKEN_KEYS": f"k2:{generate_key()},k1:{base64.b64encode(b'y' * 31).decode()}"},
            "key 'k1' in QBO_TOKEN_KEYS must be base64 of 32 bytes; got 31 bytes",
        ),
        (
            {"QBO_TOKEN_KEYS": f"k1:{generate_key()},k1:{generate_key()}"},
            "key id 'k1' appears twice in QBO_TOKEN_KEYS",
        ),
        ({"QBO_TOKEN_KEYS": f"bad id:{generate_key()}"}, "key id 'bad id' in QBO_TOKEN_KEYS"),
        ({"QBO_TOKEN_KEYS": " , "}, "QBO_TOKEN_KEYS is empty"),
        (
            {"QBO_TOKEN_KEYS": f"k1:{generate_key()}", "QBO_TOKEN_KEY": generate_key()},
            "both QBO_TOKEN_KEYS and QBO_TOKEN_KEY are set",
        ),
    ],
)
def test_configuration_errors_are_one_line_and_leak_nothing(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(KeyConfigurationError) as caught:
        KeyRing.from_env(environ)
    text = str(caught.value)
    assert message in text
    assert isinstance(caught.value, VaultError)
    assert "\n" not in text
    for value in environ.values():
        for part in value.replace(",", ":").split(":"):
            if len(part.strip()) > 8:
                assert part.strip() not in text


def test_repr_shows_key_ids_only() -> None:
    key = os.urandom(32)
    text = repr(KeyRing({"k1": key}))
    assert text == "KeyRing(primary='k1', key_ids=('k1',))"
    assert base64.b64encode(key).decode() not in text

"""AES-256-GCM token encryption with a key ring, so keys can rotate without downtime.

Ciphertexts look like ``v1:<kid>:<base64url(nonce | ciphertext | tag)>``. The key id says
which key of the ring opens it, so old keys keep decrypting until `rotate_keys` has
re-encrypted everything under the primary key. The associated data binds a ciphertext to
its realm and field, so a value copied to another realm's row, or from the refresh token
column to the access token column, fails to decrypt instead of being used.

Configuration (the environment):

- ``QBO_TOKEN_KEYS=k2:<base64 key>,k1:<base64 key>``: the first key encrypts, every key
  decrypts. Key ids are 1-32 characters of letters, digits, ``_`` and ``-``.
- ``QBO_TOKEN_KEY=<base64 key>``: shorthand for ``QBO_TOKEN_KEYS=k1:<base64 key>``. The id
  is the fixed ``k1`` (not derived from the key) so moving to a ring for a rotation is
  ``QBO_TOKEN_KEYS=k2:<new>,k1:<old>`` with no lookup.

Errors never carry key bytes, ciphertext or plaintext: only names, ids and realms.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from qbo_pipeline.vault.errors import DecryptionError, KeyConfigurationError, UnknownKeyId

KEYS_VARIABLE = "QBO_TOKEN_KEYS"
KEY_VARIABLE = "QBO_TOKEN_KEY"
SHORTHAND_KEY_ID = "k1"
FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12

_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_GENERATE_HINT = "generate one with `qbo-pipeline keys generate`"


def generate_key() -> str:
    """A fresh key for QBO_TOKEN_KEY: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _decode_key(text: str, *, name: str) -> bytes:
    """Key bytes from standard or URL-safe base64; `name` says where the key came from."""
    text = text.strip().translate(str.maketrans("-_", "+/"))
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigurationError(
            f"{name} must be base64 of {KEY_BYTES} bytes; it is not valid base64 ({_GENERATE_HINT})"
        ) from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigurationError(
            f"{name} must be base64 of {KEY_BYTES} bytes; got {len(raw)} bytes ({_GENERATE_HINT})"
        )
    return raw


def _field_label(field: str) -> str:
    return field.replace("_", " ")


def _associated_data(realm_id: str, field: str) -> bytes:
    return f"qbo-token|{FORMAT_VERSION}|{realm_id}|{field}".encode()


class KeyRing:
    """The AES-256 keys by id; the first one (the primary) encrypts, all of them decrypt."""

    def __init__(self, keys: Mapping[str, bytes], *, source: str = KEYS_VARIABLE) -> None:
        if not keys:
            raise KeyConfigurationError(
                f"{KEY_VARIABLE} is not set; {_GENERATE_HINT} and set {KEY_VARIABLE} "
                f"(or {KEYS_VARIABLE}=kid:key,... to rotate keys)"
            )
        for kid, key in keys.items():
            if not _KEY_ID.match(kid):
                raise KeyConfigurationError(
                    f"key id {kid!r} in {source} must be 1-32 letters, digits, '_' or '-'"
                )
            if len(key) != KEY_BYTES:
                raise KeyConfigurationError(
                    f"key {kid!r} in {source} must be {KEY_BYTES} bytes; got {len(key)} bytes"
                )
        self._ciphers = {kid: AESGCM(bytes(key)) for kid, key in keys.items()}
        self.source = source
        self.primary_kid = next(iter(keys))

    @classmethod
    def parse(cls, text: str, *, source: str = KEYS_VARIABLE) -> KeyRing:
        """A ring from ``kid1:base64key,kid2:base64key``; the first entry is the primary."""
        keys: dict[str, bytes] = {}
        entries = [entry.strip() for entry in text.split(",") if entry.strip()]
        for number, entry in enumerate(entries, start=1):
            kid, separator, encoded = entry.partition(":")
            kid = kid.strip()
            if not separator or not kid or not encoded.strip():
                raise KeyConfigurationError(
                    f"entry {number} of {source} must look like kid:base64key "
                    f"(e.g. k2:<key>,k1:<old key>; {_GENERATE_HINT})"
                )
            if kid in keys:
                raise KeyConfigurationError(f"key id {kid!r} appears twice in {source}")
            keys[kid] = _decode_key(encoded, name=f"key {kid!r} in {source}")
        if not keys:
            raise KeyConfigurationError(f"{source} is empty; {_GENERATE_HINT}")
        return cls(keys, source=source)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing:
        """The ring configured by QBO_TOKEN_KEYS, or the one key of QBO_TOKEN_KEY as "k1"."""
        environ = os.environ if environ is None else environ
        ring_text = (environ.get(KEYS_VARIABLE) or "").strip()
        single = (environ.get(KEY_VARIABLE) or "").strip()
        if ring_text and single:
            raise KeyConfigurationError(
                f"both {KEYS_VARIABLE} and {KEY_VARIABLE} are set; keep only {KEYS_VARIABLE} "
                f"(put the {KEY_VARIABLE} key in it as {SHORTHAND_KEY_ID}:<key>)"
            )
        if ring_text:
            return cls.parse(ring_text, source=KEYS_VARIABLE)
        if single:
            key = _decode_key(single, name=KEY_VARIABLE)
            return cls({SHORTHAND_KEY_ID: key}, source=KEY_VARIABLE)
        return cls({})

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary_kid!r}, key_ids={self.key_ids!r})"

    def encrypt(self, plaintext: str, *, realm_id: str, field: str) -> str:
        """A v1 ciphertext of `plaintext` under the primary key, bound to realm and field."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.primary_kid].encrypt(
            nonce, plaintext.encode("utf-8"), _associated_data(realm_id, field)
        )
        payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{FORMAT_VERSION}:{self.primary_kid}:{payload}"

    def decrypt(self, ciphertext: str, *, realm_id: str, field: str) -> str:
        """The plaintext, or a VaultError naming the realm, the field and the key id."""
        label = _field_label(field)
        kid, payload = self._split(ciphertext, realm_id=realm_id, label=label)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise UnknownKeyId(
                f"the {label} of realm {realm_id} was encrypted with key id {kid!r}, which is "
                f"not in {self.source}; add that key back (as a later entry of "
                f"{KEYS_VARIABLE}) or reconnect the company"
            )
        try:
            return cipher.decrypt(
                payload[:NONCE_BYTES], payload[NONCE_BYTES:], _associated_data(realm_id, field)
            ).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise DecryptionError(
                f"cannot decrypt the {label} of realm {realm_id} with key id {kid}: "
                "wrong key or tampered data"
            ) from None

    @staticmethod
    def key_id_of(ciphertext: str) -> str:
        """The key id a ciphertext names, without decrypting it."""
        return ciphertext.split(":", 2)[1] if ciphertext.count(":") >= 2 else ""

    @staticmethod
    def _split(ciphertext: str, *, realm_id: str, label: str) -> tuple[str, bytes]:
        version, _, rest = ciphertext.partition(":")
        kid, _, encoded = rest.partition(":")
        problem = None
        payload = b""
        if version != FORMAT_VERSION or not kid or not encoded:
            problem = f"is not a {FORMAT_VERSION} ciphertext"
        else:
            try:
                payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                problem = "is not valid base64"
            if problem is None and len(payload) < NONCE_BYTES + 16:
                problem = "is too short"
        if problem:
            raise DecryptionError(
                f"the stored {label} of realm {realm_id} {problem}: tampered data or written "
                "by another program; reconnect the company"
            )
        return kid, payload

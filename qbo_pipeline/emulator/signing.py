"""The RSA key the emulator signs id_tokens with, and its public half as a JWK.

Intuit signs id_tokens with RS256 and publishes its keys at the discovery document's
`jwks_uri`; a client verifies the signature, `iss`, `aud` and `exp` before it trusts the
`realmid` claim, so the emulator's id_tokens must pass the same checks.
"""

from __future__ import annotations

import functools
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ALGORITHM = "RS256"


class SigningKey:
    """One RSA-2048 key for the emulator's lifetime, named by a random `kid`."""

    def __init__(self) -> None:
        self.kid = secrets.token_urlsafe(15)

    @functools.cached_property
    def _private(self) -> rsa.RSAPrivateKey:
        """Made on first use: tests start emulators by the hundred and most never sign."""
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, str]:
        public = RSAAlgorithm.to_jwk(self._private.public_key(), as_dict=True)
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
            "n": public["n"],
            "e": public["e"],
        }

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWT whose header is Intuit's: `alg` and `kid`, no `typ`."""
        return jwt.encode(
            claims, self._private, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": None}
        )

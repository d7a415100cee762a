"""The vault's errors: one base class, one subclass per thing an operator must act on.

Every message is a single line naming the problem and the fix. None carries a token, a
key or a ciphertext, so they are safe to log, show in Dagster and raise to users. Each
says whether waiting helps (`transient`, see qbo_pipeline.errors).
"""

from __future__ import annotations

from qbo_pipeline.errors import ConfigurationError, PipelineError

AUTHORIZE_PATH = "/quickbooks/auth/authorize"


class VaultError(PipelineError):
    """Anything wrong with stored QuickBooks credentials or the keys that protect them."""


class KeyConfigurationError(ConfigurationError, VaultError):
    """QBO_TOKEN_KEY / QBO_TOKEN_KEYS is missing or malformed."""


class UnknownKeyId(VaultError):
    """A ciphertext names a key id the ring no longer holds."""


class DecryptionError(VaultError):
    """Wrong key, tampered data, or a ciphertext moved to another realm or field."""


class UnknownRealm(VaultError):
    """No connection is stored for the realm."""

    def __init__(self, realm_id: str) -> None:
        self.realm_id = realm_id
        super().__init__(
            f"no QuickBooks connection for realm {realm_id}; connect it with "
            "`qbo-pipeline auth authorize` or `qbo-pipeline auth set-tokens`"
        )


class ReauthorizationRequired(VaultError):
    """The grant is gone (invalid_grant or revoked): only a person reconnecting can fix it.

    Never retried, so runs fail fast instead of hammering Intuit's token endpoint.
    """

    def __init__(self, realm_id: str, reason: str) -> None:
        self.realm_id = realm_id
        self.reason = reason
        super().__init__(
            f"QuickBooks connection for realm {realm_id} needs to be reconnected ({reason}): "
            f"run `qbo-pipeline auth authorize --realm {realm_id}` or open {AUTHORIZE_PATH}"
        )


class RefreshLockTimeout(VaultError):
    """Another worker held the realm's refresh lease for longer than we were willing to wait."""

    transient = True

    def __init__(self, realm_id: str, seconds: float) -> None:
        self.realm_id = realm_id
        super().__init__(
            f"timed out after {seconds:g} s waiting for another worker to finish refreshing "
            f"the tokens of realm {realm_id}; retry in a minute"
        )


class RealmBusy(VaultError):
    """Another run held the company for as long as this one was willing to wait."""

    transient = True

    def __init__(self, realm_id: str, holder: str | None, seconds: float) -> None:
        self.realm_id = realm_id
        self.holder = holder
        super().__init__(
            f"realm {realm_id} is being read by another run ({holder or 'holder unknown'}) "
            f"and this run waited {seconds:g} s for it; one run per company keeps its 500 "
            "requests a minute for one reader: retry when that run ends, or raise "
            "QBO_REALM_WAIT_SECONDS"
        )


class StoreBusy(VaultError):
    """The token store's database stayed locked by other connections for too long."""

    transient = True


class StoreWriteFailed(VaultError):
    """The token store's file cannot be written: a full disk, an I/O error, permissions."""

    transient = True


class StoreUnreadable(VaultError):
    """The token store's file is not a database (corrupt, or another program's)."""


class RotatedTokenNotSaved(VaultError):
    """Intuit rotated the refresh token and every attempt to save the new one failed.

    Under strict rotation the stored token is now dead; the event log and an alert say so.
    """

    def __init__(self, realm_id: str, fingerprints: str, reason: str) -> None:
        self.realm_id = realm_id
        super().__init__(
            f"refreshed the tokens of realm {realm_id} at Intuit (refresh token {fingerprints}) "
            f"but could not save them: {reason}; fix the token store, then run a sync: if it "
            f"fails with invalid_grant, reconnect with `qbo-pipeline auth authorize --realm "
            f"{realm_id}`"
        )

"""Credentials at rest: encrypted QuickBooks tokens, their table, and single-flight refresh.

Imports no Dagster: the `defs/` layer wraps these in resources.

    keyring = KeyRing.from_env()
    db = open_database(os.environ.get("QBO_DATABASE_URL"), default_path=Path(".qbo/qbo.db"))
    store = ConnectionStore(db, keyring)
    provider = TokenProvider(store, oauth_client)
    token = provider.access_token(realm_id)
"""

from qbo_pipeline.vault.crypto import KeyRing, generate_key
from qbo_pipeline.vault.database import (
    Database,
    SQLiteDatabase,
    open_database,
)
from qbo_pipeline.vault.errors import (
    DecryptionError,
    KeyConfigurationError,
    ReauthorizationRequired,
    RefreshLockTimeout,
    RotatedTokenNotSaved,
    StoreBusy,
    StoreUnreadable,
    StoreWriteFailed,
    UnknownKeyId,
    UnknownRealm,
    VaultError,
)
from qbo_pipeline.vault.events import EventKind, TokenEvent
from qbo_pipeline.vault.store import (
    Connection,
    ConnectionStatus,
    ConnectionStore,
    DecryptedTokens,
    Lease,
    RotationReport,
    fingerprint,
)
from qbo_pipeline.vault.tokens import DEFAULT_REFRESH_MARGIN, TokenProvider

__all__ = [
    "DEFAULT_REFRESH_MARGIN",
    "Connection",
    "ConnectionStatus",
    "ConnectionStore",
    "Database",
    "DecryptedTokens",
    "DecryptionError",
    "EventKind",
    "KeyConfigurationError",
    "KeyRing",
    "Lease",
    "ReauthorizationRequired",
    "RefreshLockTimeout",
    "RotatedTokenNotSaved",
    "RotationReport",
    "SQLiteDatabase",
    "StoreBusy",
    "StoreUnreadable",
    "StoreWriteFailed",
    "TokenEvent",
    "TokenProvider",
    "UnknownKeyId",
    "UnknownRealm",
    "VaultError",
    "fingerprint",
    "generate_key",
    "open_database",
]

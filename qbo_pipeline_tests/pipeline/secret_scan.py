"""The one scan for secrets in what a person or another system can read: command output,
logs, files, answers. A leak is reported by the secret's name and where it was found,
never by its value, so a failing test does not print the secret it caught."""

from __future__ import annotations

from collections.abc import Mapping

from qbo_pipeline.runtime import Runtime


def vault_tokens(runtime: Runtime, realm_id: str, label: str = "") -> dict[str, str]:
    """The access and refresh token the vault holds for the realm now, by name."""
    tokens = runtime.store.decrypt(realm_id)
    prefix = f"{label} " if label else ""
    return {
        f"{prefix}access token": tokens.access_token,
        f"{prefix}refresh token": tokens.refresh_token,
    }


def company_secrets(company) -> dict[str, str]:
    """What a connected test company (qbo_pipeline_tests.company) must never show: its
    app's client secret, the vault's token key and the tokens the vault holds now."""
    return {
        "client secret": company.env["QUICKBOOKS_CLIENT_SECRET"],
        "QBO_TOKEN_KEY": company.env["QBO_TOKEN_KEY"],
        **vault_tokens(company.runtime, company.realm_id),
    }


def command_output(completed) -> dict[str, str]:
    """A finished subprocess's stdout and stderr, named for `assert_no_secret`."""
    return {"stdout": completed.stdout or "", "stderr": completed.stderr or ""}


def assert_no_secret(texts: Mapping[str, str | bytes], secrets: Mapping[str, str]) -> None:
    """No secret (name: value) occurs in any text (where: text or bytes)."""
    empty = sorted(name for name, value in secrets.items() if not value)
    leaks = [
        f"the {name} is in the {where}"
        for where, text in texts.items()
        for name, value in secrets.items()
        if (value.encode() if isinstance(text, bytes) else value) in text
    ]
    # pytest shows a failing frame's arguments: gone, they cannot show the secrets. The
    # messages are plain because pytest rewrites asserts in test modules only.
    del texts, secrets
    assert not empty, f"nothing to scan for as {', '.join(empty)}"  # "" is everywhere
    assert not leaks, "; ".join(leaks)

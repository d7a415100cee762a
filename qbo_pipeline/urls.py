"""Connection URLs made fit to show: passwords masked in URLs and scrubbed from messages.

Both the token store and the warehouse print their URL in errors and reprs; neither may
print the password that may be in it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# password=... among the query parameters (libpq accepts it there too).
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)


def _split_password(url: str) -> tuple[str, str, str] | None:
    """(before, password, after) when the authority holds user:password@, else None.

    The password ends at the last @ before the query string, so an unescaped @, / or :
    inside it is still masked (an unescaped ? cannot be told from the query's start).
    """
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    first_at = url.find("@", start)
    if first_at < 0:
        return None
    query = url.find("?", first_at)
    at = url.rfind("@", start, len(url) if query < 0 else query)
    colon = url.find(":", start, at)
    if colon < 0:
        return None
    return url[: colon + 1], url[colon + 1 : at], url[at:]


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, fit for logs, errors and the UI."""
    masked = url
    if parts := _split_password(url):
        before, _, after = parts
        masked = f"{before}***{after}"
    return _QUERY_PASSWORD.sub(r"\1***", masked)


def scrub(message: str, url: str) -> str:
    """Remove the URL's password from a message a driver produced, in case it echoed it."""
    message = message.replace(url, mask_url(url))
    for secret in sorted(_passwords(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def _passwords(url: str) -> set[str]:
    found = []
    if parts := _split_password(url):
        found.append(parts[1])
    found.extend(match.group(2) for match in _QUERY_PASSWORD.finditer(url))
    return {secret for value in found if value for secret in (value, unquote(value))}

"""The root of the project's errors, and the one mark every retry decision reads.

An error is transient when the same call may succeed if made again later (a timeout, a
503, a throttle, a database another worker holds for a moment) and terminal when only a
person can fix it (a wrong key, a revoked grant, a malformed query, a bad setting). The
mark lives on the error, on the class or, where it depends on an answer's status, on the
instance, and the API client's retries, the OAuth client's retries, the assets' retry
policy and the service's status codes all read it through `is_transient`. So no two
places keep their own list, and a new error class decides once.

Every error here has a one-line message that names the problem and what to do, and never
holds a token, a key, a password or a client secret: messages are logged, shown in the
Dagster UI and answered over HTTP as they are.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Anything this project raises on purpose; see the module docstring."""

    transient: bool = False

    def __init__(self, message: str = "", *, transient: bool | None = None) -> None:
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class ConfigurationError(PipelineError):
    """A setting is missing or malformed; the message names the variable and what it takes."""


class BadRequest(PipelineError):
    """A request (over HTTP or from the command line) lacks or garbles a field it names."""


def is_transient(error: BaseException) -> bool:
    """Whether trying the same call again later may succeed.

    Errors from below the project's own (httpx, drivers) are wrapped where they are
    caught, so anything else is a bug, and retrying a bug only repeats it.
    """
    return isinstance(error, PipelineError) and error.transient

"""Errors a user can cause.

Every error that stems from user input (a bad CWL document, a missing input file, an
unknown run id, a wrong setting) is a :class:`TwinError` subclass whose message says
what was wrong and how to fix it. The CLI prints these without a traceback and exits
non-zero; the API maps them to 4xx responses with a JSON body (``http_status``).
"""

from __future__ import annotations


class TwinError(Exception):
    """Base class of all errors a user can cause; ``exit_code`` is what the CLI returns."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(TwinError):
    """A setting (environment variable or ``twin.toml``) is invalid."""


class NotFoundError(TwinError):
    """A run, step or other stored object does not exist."""

    http_status = 404


class InvalidDocumentError(TwinError):
    """A CWL document is malformed or does not validate."""


class InvalidInputError(TwinError):
    """A job input object is missing a value, has a wrong type or names a missing file."""


class UnsupportedRequirementError(TwinError):
    """The workflow needs a feature this machine cannot provide (e.g. containers)."""

    exit_code = 33


class AuthError(TwinError):
    """A request has no credentials, or credentials that are wrong, expired or revoked."""

    http_status = 401


class ForbiddenError(TwinError):
    """The caller is known but lacks the scope or project role the operation needs."""

    http_status = 403


class PayloadTooLargeError(TwinError):
    """An upload is larger than the configured limit."""

    http_status = 413


class StateError(TwinError):
    """An operation is not allowed in the current state (e.g. resuming a finished run)."""

    http_status = 409

"""REST API, access control and the web UI: what ``twin serve`` runs.

Public interface:

- :func:`create_app` — the FastAPI application (REST API under ``/api/v1``, the web UI
  at ``/``, ``/health``, ``/metrics``) with the run dispatcher started in its lifespan.
- :func:`serve` — run it with uvicorn (``twin serve``), printing the first-start token.
- :class:`AccountStore`, :class:`Principal` — users, tokens, projects and roles.
- :class:`OidcVerifier` — OIDC bearer tokens checked against an issuer's JWKS.
"""

from __future__ import annotations

from twinengine.core.lazy import lazy_exports

_EXPORTS = {
    "AccountStore": "twinengine.api.accounts",
    "Principal": "twinengine.api.accounts",
    "SCOPES": "twinengine.api.accounts",
    "ROLES": "twinengine.api.accounts",
    "OidcVerifier": "twinengine.api.oidc",
    "create_app": "twinengine.api.app",
    "serve": "twinengine.api.server",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

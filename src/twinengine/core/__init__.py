"""Core: settings, the metadata database, the object store, ids, errors and states.

``core`` depends on no other TwinEngine module. Everything else reaches the database and
the store through :func:`twinengine.core.context` (settings resolved once per process).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from twinengine.core.errors import (
    AuthError,
    ConfigError,
    ForbiddenError,
    InvalidDocumentError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    StateError,
    TwinError,
    UnsupportedRequirementError,
)
from twinengine.core.ids import new_id
from twinengine.core.settings import Settings, load_settings
from twinengine.core.states import State, check_transition
from twinengine.core.store import ObjectStore

if TYPE_CHECKING:
    from twinengine.core.database import Database, close_all, open_database

# SQLAlchemy is imported on first use of these, not with the package: a command that
# does not touch the database through it (twin --help, a native run) never pays for it
_LAZY = {"Database", "close_all", "open_database"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("twinengine.core.database"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'twinengine.core' has no attribute {name!r}")


__all__ = [
    "AuthError",
    "ConfigError",
    "Database",
    "ForbiddenError",
    "InvalidDocumentError",
    "InvalidInputError",
    "NotFoundError",
    "ObjectStore",
    "PayloadTooLargeError",
    "Settings",
    "State",
    "StateError",
    "TwinError",
    "UnsupportedRequirementError",
    "check_transition",
    "close_all",
    "get_database",
    "get_settings",
    "get_store",
    "load_settings",
    "new_id",
    "open_database",
    "reset",
]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process (resolved once; :func:`reset` forgets them)."""
    return load_settings()


def get_database(settings: Settings | None = None) -> Database:
    """The migrated metadata database for ``settings`` (default: this process's)."""
    from twinengine.core.database import open_database

    return open_database((settings or get_settings()).database_url)


def get_store(settings: Settings | None = None) -> ObjectStore:
    """The object store for ``settings`` (default: this process's)."""
    return ObjectStore((settings or get_settings()).store)


def reset() -> None:
    """Forget cached settings and database engines (tests change the environment)."""
    get_settings.cache_clear()
    import sys

    database = sys.modules.get("twinengine.core.database")
    if database is not None:
        database.close_all()

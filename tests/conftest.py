"""Shared fixtures: every test runs with its own TwinEngine home and no inherited settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import twinengine.core

#: settings read from the environment that a developer's shell could leak into a test
_SETTINGS_ENV = (
    "TWIN_DATABASE_URL",
    "TWIN_STORE",
    "TWIN_CONFIG",
    "TWIN_EXECUTOR",
    "TWIN_CORES",
    "TWIN_RAM_MB",
    "TWIN_DASK_ADDRESS",
    "TWIN_MAX_UPLOAD_MB",
    "TWIN_MAX_RUNS",
    "TWIN_OIDC_ISSUER",
    "TWIN_OIDC_AUDIENCE",
    "TWIN_OIDC_JWKS_URL",
    "TWIN_OIDC_SCOPES",
    "TWIN_INPUT_ROOTS",
    "TWIN_SANDBOX",
    "TWIN_SANDBOX_USER",
    "TWIN_SANDBOX_NETWORK",
    "TWIN_SANDBOX_NETWORK_DENY",
    "TWIN_SANDBOX_UIDS",
    "TWIN_SANDBOX_PROCESSES",
    "TWIN_SANDBOX_MEMORY_MB",
    "TWIN_SANDBOX_FILE_MB",
    "TWIN_SANDBOX_TMP_MB",
    "TWIN_SANDBOX_OUTPUT_MB",
    "TWIN_SANDBOX_OUTPUT_FILES",
    "TWIN_FETCH_HOSTS",
    "TWIN_FETCH_TIMEOUT",
    "TWIN_WATCH_ROOTS",
    "TWIN_SECRET_KEY_FILE",
)


@pytest.fixture(autouse=True)
def twin_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``TWIN_HOME`` at a fresh folder, work in it and forget cached settings/engines."""
    monkeypatch.setenv("TWIN_HOME", str(tmp_path))
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./twin.toml from where pytest was started
    twinengine.core.reset()
    yield tmp_path
    twinengine.core.reset()

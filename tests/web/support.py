"""What the browser tests share: the running server's coordinates and the artifacts folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    """A ``twin serve`` subprocess: its base URL, admin token, home and output log."""

    url: str
    token: str
    home: Path
    log: Path


def artifacts_dir() -> Path:
    """Where screenshots and the server log go (``TWIN_TEST_ARTIFACTS`` overrides it)."""
    path = Path(os.environ.get("TWIN_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path

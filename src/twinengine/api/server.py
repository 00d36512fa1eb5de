"""``twin serve``: the API, the web UI and the run dispatcher in one uvicorn process.

:func:`serve` keeps the server's files private (umask 077 for everything it and its
children write, the home 0700, ``twin.db`` 0600), settles the sandbox every step and
function will run in — refusing to start, with one line naming the fix, when the
``sandbox`` setting asks for one and none works here, and warning loudly when it is
``none`` — migrates the database, creates the first admin token on an empty database
and prints it once, then runs the app with uvicorn until interrupted.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import replace
from pathlib import Path

from twinengine import __version__
from twinengine.core import get_settings
from twinengine.workflows.sandbox import server_sandbox

UNCONFINED = (
    "WARNING: sandbox = none: every step and function runs UNCONFINED, as this server's "
    "user, with access to its home (twin.db, other projects' runs) and environment. Use "
    "this only for a single-user server; install bubblewrap and unset TWIN_SANDBOX "
    "for a shared one."
)


def private_home(home: Path) -> None:
    """Make the home (created if missing) readable by the server's user only."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)


def serve(host: str = "127.0.0.1", port: int = 8321, log_level: str = "warning") -> None:
    import uvicorn

    from twinengine.api.accounts import AccountStore
    from twinengine.api.app import create_app

    os.umask(0o077)  # nothing the server or its run processes write is world-readable
    settings = get_settings()
    sandbox = server_sandbox(settings)  # SandboxUnavailableError: refuse to start
    private_home(settings.home)
    if not sandbox.confines:
        print(UNCONFINED, file=sys.stderr)
    app = create_app(replace(settings, sandbox=sandbox.name))
    token = AccountStore(app.state.twin.db).bootstrap()
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    print(f"TwinEngine {__version__} on http://{shown}:{port}  (API docs: /docs, UI: /)")
    if token:
        print(f"first start: admin token (shown once, keep it): {token}")
    print(f"sandbox {sandbox.describe()}")
    print(f"home {settings.home}  database {settings.database_url}")  # the last line before
    sys.stdout.flush()
    gc.collect()  # what start-up made stays for good: a full collection then scans only
    gc.freeze()  # what came since (the whole heap paused every thread for ~80 ms)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)

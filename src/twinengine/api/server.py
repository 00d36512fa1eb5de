"""``twin serve``: the API, the web UI and the run dispatcher in one uvicorn process.

:func:`serve` migrates the database, creates the first admin token on an empty database
and prints it once, then runs the app with uvicorn until interrupted.
"""

from __future__ import annotations

import sys

from twinengine import __version__
from twinengine.core import get_settings


def serve(host: str = "127.0.0.1", port: int = 8321, log_level: str = "warning") -> None:
    import uvicorn

    from twinengine.api.accounts import AccountStore
    from twinengine.api.app import create_app

    settings = get_settings()
    app = create_app(settings)
    token = AccountStore(app.state.twin.db).bootstrap()
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    print(f"TwinEngine {__version__} on http://{shown}:{port}  (API docs: /docs, UI: /)")
    if token:
        print(f"first start: admin token (shown once, keep it): {token}")
    print(f"home {settings.home}  database {settings.database_url}")  # the last line before
    sys.stdout.flush()
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)

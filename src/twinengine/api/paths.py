"""Server paths never leave the server: what the API shows in their place.

Run records, PROV documents, logs and error messages are full of paths on the server
(``$TWIN_HOME/runs/<run>/outputs/…``, ``$TWIN_HOME/uploads/<id>/…``, the object store,
temporary folders). :class:`ServerPaths` rewrites every such path it finds in a text or
in a JSON-like value into what a client can use or may know: a run's output file becomes
its download URL (``/api/v1/runs/<run>/files/<name>``), an upload ``upload:<id>``, a
registered workflow's file ``workflow:<id>/<name>``, anything else of the run
``run:<run>/<name>``, and any other path in the home, the store or the temporary folder
``$TWIN_HOME/…``, ``$TWIN_STORE/…`` or ``$TMPDIR/…``. ``file://`` URLs are rewritten
like plain paths; a path inside another URL or word (``https://host/tmp/x``) is not one.
The API applies it to every response that carries stored values and, as a safety net, to
every error message (:mod:`twinengine.api.errors`).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from twinengine.core import Settings

#: characters that end a path inside a text (quotes, brackets, separators, spaces)
_END = r"\s\"'<>`,;)\]}|"
_TAIL = rf"[^{_END}]*"


class ServerPaths:
    """Rewrites the server paths of one ``twin serve`` (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        home = Path(settings.home).expanduser()
        self.home = home.resolve()
        self.runs = (self.home / "runs").as_posix()
        roots: dict[str, Callable[[str], str]] = {}
        for root in {home.as_posix(), self.home.as_posix()}:
            roots[root] = self._in_home
        store = settings.store.removeprefix("file://")
        if "://" not in store:
            for root in {store, Path(store).expanduser().resolve().as_posix()}:
                roots.setdefault(root, lambda rel: _named("$TWIN_STORE", rel))
        tmp = Path(tempfile.gettempdir())
        for root in {tmp.as_posix(), tmp.resolve().as_posix()}:
            roots.setdefault(root, lambda rel: _named("$TMPDIR", rel))
        self.roots = {r.rstrip("/"): f for r, f in roots.items() if r.rstrip("/")}
        # longest root first: the home inside the temporary folder is the home
        ordered = sorted(self.roots, key=len, reverse=True)
        alternatives = "|".join(re.escape(r) for r in ordered)
        self._pattern = re.compile(
            rf"(?<![\w.~%/-])(?:file://)?(?P<root>{alternatives})(?=/|[{_END}]|$)"
            rf"(?P<rest>(?:/{_TAIL})?)"
        )

    def text(self, value: str) -> str:
        """``value`` with every server path in it rewritten."""
        if not any(root in value for root in self.roots):
            return value
        return self._pattern.sub(self._replace, value)

    def value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings) with every server path rewritten."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def _replace(self, match: re.Match[str]) -> str:
        relative = unquote(match.group("rest").strip("/"))
        if ".." in relative.split("/"):
            relative = "…"
        return self.roots[match.group("root")](relative)

    def _in_home(self, relative: str) -> str:
        parts = relative.split("/") if relative else []
        if len(parts) >= 2 and parts[0] == "runs":
            run, inside = parts[1], parts[2:]
            if len(inside) >= 2 and inside[0] == "outputs":
                return f"/api/v1/runs/{run}/files/" + quote("/".join(inside[1:]))
            return f"run:{run}" + ("/" + "/".join(inside) if inside else "")
        if len(parts) >= 2 and parts[0] == "uploads":
            return f"upload:{parts[1]}"
        if len(parts) >= 2 and parts[0] == "workflows":
            return f"workflow:{'/'.join(parts[1:])}"
        return _named("$TWIN_HOME", relative)


def _named(name: str, relative: str) -> str:
    return f"{name}/{relative}" if relative else name

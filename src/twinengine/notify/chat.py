"""The ``apprise`` channel: chat and push services through Apprise URLs.

The target is one `Apprise <https://github.com/caronc/apprise>`_ URL — ``slack://…``,
``mmost://…`` (Mattermost), ``matrix://…``, ``msteams://…``, ``tgram://…``,
``discord://…``, ``ntfy://…``, ``mailto://…``, ``json://host/path`` and some hundred
more. A URL Apprise does not understand is refused when subscribing; a delivery fails
when Apprise reports that it could not notify, with the warnings it logged as the
reason. The URL is shown back in Apprise's privacy form (tokens and passwords hidden).
A URL that names its own host (``json://``, ``mmost://``, ``ntfy://`` …) is delivered
only when that host resolves to a public address (:mod:`twinengine.notify.addresses`;
Apprise connects by itself, so this check is made just before, not on the connection).
"""

from __future__ import annotations

from typing import Any

from twinengine.core import TwinError
from twinengine.notify.addresses import public_address
from twinengine.notify.base import DeliveryError, Notifier
from twinengine.notify.note import Note

_FAILURE_TYPES = {"run_failed", "source_down", "guard", "drift", "threshold"}


def _plugin(url: str) -> Any:
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


class AppriseNotifier(Notifier):
    """Notifies one Apprise URL per delivery."""

    channel = "apprise"

    def check_target(self, target: str | None) -> str | None:
        target = super().check_target(target) or ""
        if not _plugin(target):
            scheme = target.split("://", 1)[0][:20] if "://" in target else None
            shown = f"the URL {scheme}://…" if scheme else f"{target[:20]!r}: not a URL"
            raise TwinError(
                f"Apprise does not understand {shown}",
                hint="see https://github.com/caronc/apprise/wiki for the URL of each service",
            )
        return target

    def describe(self, target: str | None) -> str | None:
        plugin = _plugin(target) if target else None
        if not plugin:
            return target
        shown = plugin.url(privacy=True)
        # Apprise spells out every default option; keep the query only if one was given
        return shown if "?" in (target or "") else shown.partition("?")[0]

    def send(self, note: Note, target: str | None) -> None:
        import apprise

        plugin = _plugin(target or "")
        if not plugin:
            raise DeliveryError("Apprise does not understand the target URL")
        host = getattr(plugin, "host", None)  # a service at a host the user names (some
        if isinstance(host, str) and host:  # plugins keep a token there: it resolves nowhere)
            port = int(getattr(plugin, "port", None) or 0)
            public_address(host, port, str(self.describe(target)), must_resolve=False)
        client = apprise.Apprise()
        client.add(plugin)
        kind = (
            apprise.NotifyType.FAILURE if note.kind in _FAILURE_TYPES else apprise.NotifyType.INFO
        )
        where = f"[{note.project}] " if note.project else ""
        logged: list[str] = []

        def remember(entry: Any, _plugin: Any = None) -> None:
            if getattr(entry, "level", "") in ("WARNING", "ERROR", "CRITICAL"):
                logged.append(str(entry.message))

        arguments = {"title": where + note.title, "body": note.text(), "notify_type": kind}
        try:
            result = client.notify(**arguments, log_callback=remember)
        except TypeError:  # an Apprise without log_callback (before 2.x)
            result = client.notify(**arguments)
        if not result:
            reason = "; ".join(dict.fromkeys(logged)) or "no reason given"
            raise DeliveryError(f"Apprise could not notify {self.describe(target)}: {reason}")

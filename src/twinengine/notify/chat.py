"""The ``apprise`` channel: chat and push services through Apprise URLs.

The target is one `Apprise <https://github.com/caronc/apprise>`_ URL — ``slack://…``,
``mmost://…`` (Mattermost), ``matrix://…``, ``msteams://…``, ``tgram://…``,
``discord://…``, ``ntfy://…``, ``mailto://…``, ``json://host/path`` and some hundred
more. A URL Apprise does not understand is refused when subscribing, and so is a
service of the server's own desktop or system (D-Bus, GNOME, macOS, Windows, the local
syslog, a USB light): the server is not anyone's desktop. The URL is shown back in
Apprise's privacy form (tokens and passwords hidden).

A URL that names its own host (``json://``, ``mmost://``, ``ntfy://``, an e-mail
``?smtp=`` server …) is refused when subscribing and again before each delivery unless
every address of that host is public (:mod:`twinengine.notify.addresses`); and since
Apprise connects by itself, every connection it makes while delivering is checked as it
is made (:mod:`twinengine.notify.egress`): a redirect, a second lookup of the name that
now answers 127.0.0.1, or a host taken from another option is refused there. A failed
delivery says only that it failed (or was refused): what the peer answered, or how the
connection failed, goes to the server log, never to the user (no port-scan oracle).
"""

from __future__ import annotations

import logging
from typing import Any

from twinengine.core import TwinError
from twinengine.notify.addresses import check_host, refused
from twinengine.notify.base import DeliveryError, Notifier
from twinengine.notify.egress import public_only
from twinengine.notify.note import Note

log = logging.getLogger("twinengine.notify")

_FAILURE_TYPES = {"run_failed", "source_down", "guard", "drift", "threshold"}
#: plugins that notify the machine they run on, not a service somewhere
_LOCAL_PLUGINS = frozenset(
    {
        "NotifyDBus",
        "NotifyGLib",
        "NotifyGnome",
        "NotifyMacOSX",
        "NotifyWindows",
        "NotifySyslog",
        "NotifyBlink1",
    }
)


def _plugin(url: str) -> Any:
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def _hosts(plugin: Any) -> list[str]:
    """The hosts a plugin connects to that its URL names (its ``{host}``, an e-mail
    plugin's SMTP server); plugins that keep a token in the host part name none."""
    hosts = []
    tokens = getattr(plugin, "template_tokens", {}) or {}
    host = getattr(plugin, "host", None)
    if "host" in tokens and isinstance(host, str) and host:
        hosts.append(host)
    smtp = getattr(plugin, "smtp_host", None)
    if isinstance(smtp, str) and smtp:
        hosts.append(smtp)
    return hosts


class AppriseNotifier(Notifier):
    """Notifies one Apprise URL per delivery."""

    channel = "apprise"

    def check_target(self, target: str | None) -> str | None:
        target = super().check_target(target) or ""
        plugin = _plugin(target)
        if not plugin:
            scheme = target.split("://", 1)[0][:20] if "://" in target else None
            shown = f"the URL {scheme}://…" if scheme else f"{target[:20]!r}: not a URL"
            raise TwinError(
                f"Apprise does not understand {shown}",
                hint="see https://github.com/caronc/apprise/wiki for the URL of each service",
            )
        if type(plugin).__name__ in _LOCAL_PLUGINS:
            raise TwinError(
                f"the Apprise service {target.split(':', 1)[0][:20]}:// notifies the "
                "server's own machine",
                hint="use a chat, push or mail service the recipients read",
            )
        for host in _hosts(plugin):
            check_host(host, f"the Apprise URL {self.describe(target)}")
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
        if not plugin or type(plugin).__name__ in _LOCAL_PLUGINS:
            raise DeliveryError("Apprise does not deliver to the target URL")
        shown = str(self.describe(target))
        for host in _hosts(plugin):
            check_host(host, f"the Apprise URL {shown}")
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
        with public_only(shown) as egress:
            try:
                result = client.notify(**arguments, log_callback=remember)
            except TypeError:  # an Apprise without log_callback (before 2.x)
                result = client.notify(**arguments)
        if egress.refused:
            raise refused(f"the Apprise URL {shown}", egress.refused[0])
        if not result:
            reason = "; ".join(dict.fromkeys(logged)) or "no reason given"
            log.warning("Apprise could not notify %s: %s", shown, reason)
            raise DeliveryError(
                f"Apprise could not notify {shown}: the delivery failed",
                hint="the server log has the service's answer",
            )

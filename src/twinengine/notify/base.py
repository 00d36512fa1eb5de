"""Channels: the :class:`Notifier` interface, the built-in ``ui`` channel and the registry.

A notifier delivers a :class:`~twinengine.notify.note.Note` to one target of its
channel (a URL, an address) and raises :class:`DeliveryError` saying why when it cannot;
:meth:`Notifier.check_target` refuses a target at subscription time, and
:meth:`Notifier.describe` is the target as it may be shown back (secrets hidden). The
built-ins (``ui``, ``webhook``, ``email``, ``apprise``) are found without scanning
installed packages' entry points; third-party channels register in the entry-point
group ``twinengine.notifiers`` (they cannot replace a built-in name).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from twinengine.core import TwinError
from twinengine.notify.note import Note

GROUP = "twinengine.notifiers"

#: channels shipped with TwinEngine, loadable without scanning entry points
BUILTIN_NOTIFIERS = {
    "ui": "twinengine.notify.base:UiNotifier",
    "webhook": "twinengine.notify.webhook:WebhookNotifier",
    "email": "twinengine.notify.mail:EmailNotifier",
    "apprise": "twinengine.notify.chat:AppriseNotifier",
}


class DeliveryError(TwinError):
    """A notification could not be delivered (the reason is in the message)."""


class Notifier(ABC):
    """Delivers notes through one channel; one instance serves every target."""

    channel: ClassVar[str]

    @abstractmethod
    def send(self, note: Note, target: str | None) -> None:
        """Deliver ``note`` to ``target``; raise (ideally :class:`DeliveryError`) on failure."""

    def check_target(self, target: str | None) -> str | None:
        """The target, normalised; :class:`TwinError` saying what is wrong with it."""
        target = (target or "").strip()
        if not target:
            raise TwinError(f"the {self.channel} channel needs a target")
        if len(target) > 2000:
            raise TwinError(f"the {self.channel} target is longer than 2000 characters")
        return target

    def describe(self, target: str | None) -> str | None:
        """The target as it may be shown back to users (secrets hidden)."""
        return target

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class UiNotifier(Notifier):
    """The web UI: the note is already stored in the inbox, which the UI reads live."""

    channel = "ui"

    def send(self, note: Note, target: str | None) -> None:
        return None

    def check_target(self, target: str | None) -> str | None:
        if target:
            raise TwinError(
                "the ui channel takes no target", hint="notes appear in the web UI's inbox"
            )
        return None


class _Builtin:
    """A built-in notifier, loadable like an entry point."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = BUILTIN_NOTIFIERS[name]

    def load(self) -> Any:
        module, _, attr = self.value.partition(":")
        return getattr(importlib.import_module(module), attr)


def available_notifiers() -> dict[str, Any]:
    """Registered channels by name: the built-ins and the group ``twinengine.notifiers``."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = {ep.name: ep for ep in entry_points(group=GROUP)}
    found.update({name: _Builtin(name) for name in BUILTIN_NOTIFIERS})
    return found


def make_notifier(channel: str) -> Notifier:
    """A notifier of ``channel``; :class:`TwinError` naming the known channels otherwise."""
    if channel in BUILTIN_NOTIFIERS:
        entry: Any = _Builtin(channel)
    else:
        registry = available_notifiers()
        if channel not in registry:
            raise TwinError(
                f"unknown notification channel {channel!r}",
                hint="known channels: " + ", ".join(sorted(registry)),
            )
        entry = registry[channel]
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, Notifier)):
        raise TwinError(f"the notifier registered as {channel!r} is not a Notifier subclass")
    return cls()

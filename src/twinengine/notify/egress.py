"""The connections a delivery makes go to public addresses only — checked as they are made.

A channel such as Apprise connects by itself: its plugins resolve their hosts, follow
redirects, take a second host from an option (``?smtp=``, ``?url=``) and may resolve a
name again after it was checked (DNS rebinding). So inside :func:`public_only`, every
socket the delivery opens — in the delivering thread and in the worker threads Apprise
hands its context to (a :class:`contextvars.ContextVar` travels with it) — is checked
when it connects or sends a datagram: the destination address (a name is resolved here
once, checked, and the socket connects to that very address) must be public (see
:func:`twinengine.notify.addresses.refusal`), and no Unix or other local socket may be
opened. A refused connection fails with :class:`PermissionError` inside the library and
is remembered, so the channel reports "refused" rather than the library's failure. The
check is installed on :class:`socket.socket` the first time it is needed and does
nothing for any code that does not run inside :func:`public_only`. With
``TWIN_NOTIFY_PRIVATE_TARGETS=1`` nothing is checked.
"""

from __future__ import annotations

import contextvars
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from twinengine.notify.addresses import addresses_of, private_allowed, refusal

_INET = (socket.AF_INET, socket.AF_INET6)


@dataclass
class Egress:
    """The outgoing connections of one delivery: which were refused."""

    what: str
    refused: list[str] = field(default_factory=list)

    def destination(self, family: int, address: Any) -> Any:
        """``address`` to connect to (a name replaced by its checked address), or
        :class:`PermissionError` when it is not a public one."""
        if family not in _INET or not isinstance(address, tuple) or not address:
            return self._refuse("a local socket")
        host = str(address[0])
        try:
            found = addresses_of(host)
        except (OSError, UnicodeError, ValueError):
            return self._refuse(f"{host} (does not resolve)")
        usable = [a for a in found if (a.version == 6) == (family == socket.AF_INET6)]
        if not usable or any(refusal(a) for a in found):
            return self._refuse(host)
        return (str(usable[0]), *address[1:])

    def _refuse(self, what: str) -> Any:
        self.refused.append(what)
        raise PermissionError(f"refused: {what} is not a public address")


_CURRENT: contextvars.ContextVar[Egress | None] = contextvars.ContextVar(
    "twinengine_notify_egress", default=None
)
_INSTALL = threading.Lock()
_installed = False


@contextmanager
def public_only(what: str) -> Iterator[Egress]:
    """Check every connection made inside (see the module docstring)."""
    egress = Egress(what)
    if private_allowed():
        yield egress
        return
    _install()
    token = _CURRENT.set(egress)
    try:
        yield egress
    finally:
        _CURRENT.reset(token)


def _install() -> None:
    """Put the check on :class:`socket.socket` (once per process)."""
    global _installed
    with _INSTALL:
        if _installed:
            return
        plain = socket.socket
        connect, connect_ex, sendto = plain.connect, plain.connect_ex, plain.sendto

        def checked_connect(self: socket.socket, address: Any) -> None:
            egress = _CURRENT.get()
            if egress is not None:
                address = egress.destination(self.family, address)
            return connect(self, address)

        def checked_connect_ex(self: socket.socket, address: Any) -> int:
            egress = _CURRENT.get()
            if egress is not None:
                address = egress.destination(self.family, address)
            return connect_ex(self, address)

        def checked_sendto(self: socket.socket, data: Any, *args: Any) -> int:
            egress = _CURRENT.get()
            if egress is not None and args:
                args = (*args[:-1], egress.destination(self.family, args[-1]))
            return sendto(self, data, *args)

        plain.connect = checked_connect  # type: ignore[method-assign]
        plain.connect_ex = checked_connect_ex  # type: ignore[method-assign]
        plain.sendto = checked_sendto  # type: ignore[method-assign]
        _installed = True

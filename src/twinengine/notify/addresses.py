"""Where a notification may be sent: public addresses only, unless the operator allows more.

A subscription names a URL; without a check, a user could point a webhook (or an Apprise
URL such as ``json://``) at the server itself, at a service listening on its loopback
or at the private network around it, and have the server send requests there for them
(server-side request forgery). :func:`public_address` resolves a host at delivery time
and refuses it when any of its addresses is loopback, private, link-local, multicast,
reserved or unspecified (IPv4-mapped IPv6 addresses are judged by their IPv4 address);
the webhook channel then connects to exactly the address that was checked, so a name
that resolves differently a moment later changes nothing. Setting
``TWIN_NOTIFY_PRIVATE_TARGETS=1`` in the server's environment allows such addresses
(a deployment whose receivers live on its own network).
"""

from __future__ import annotations

import ipaddress
import os
import socket

from twinengine.notify.base import DeliveryError

ALLOW_ENV = "TWIN_NOTIFY_PRIVATE_TARGETS"


def private_allowed() -> bool:
    """Whether the operator allows notifications to private and loopback addresses."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def _refusal(address: str) -> str | None:
    """Why ``address`` is not a public one (None when it is)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for flag, what in (
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_unspecified", "an unspecified"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
    ):
        if getattr(ip, flag):
            return f"{address} is {what} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


def public_address(host: str, port: int, what: str, *, must_resolve: bool = True) -> str | None:
    """The address to connect to for ``host``; :class:`DeliveryError` naming ``what``
    when one of its addresses is not public, or when the host cannot be resolved (None
    instead when not ``must_resolve``: what does not resolve cannot be reached)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        if not must_resolve:
            return None
        reason = f"{host} does not resolve ({exc})"
        raise DeliveryError(f"{what} could not be reached: {reason}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        if not must_resolve:
            return None
        raise DeliveryError(f"{what} could not be reached: {host} has no address")
    if not private_allowed():
        for address in addresses:
            reason = _refusal(address)
            if reason:
                raise DeliveryError(
                    f"{what} is refused: {host} resolves to {reason}",
                    hint=f"the server sends notifications to public addresses only; an "
                    f"operator may allow private ones with {ALLOW_ENV}=1",
                )
    return addresses[0]

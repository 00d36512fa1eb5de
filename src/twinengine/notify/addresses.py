"""Where a notification may be sent: public addresses only, unless the operator allows more.

A subscription names a URL; without a check, a user could point a webhook (or an Apprise
URL such as ``json://``) at the server itself, at a service listening on its loopback
or at the private network around it, and have the server send requests there for them
(server-side request forgery). :func:`addresses_of` reads a host the way a connection
would — an IP literal in any spelling (``[::1]``, ``[::ffff:7f00:1]``, a zone id such
as ``fe80::1%eth0``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``) or a name, resolved to
all its addresses — and :func:`refusal` says why an address is not a public one:
loopback, private, link-local, site-local, multicast, reserved, unspecified, shared
(100.64/10), or an IPv6 address that carries such an IPv4 address (IPv4-mapped,
-compatible and -translated, NAT64, 6to4, Teredo). :func:`check_host` refuses a host
when any of its addresses is not public; :func:`public_address` also gives the address
to connect to, so a name that resolves differently a moment later changes nothing.
Setting ``TWIN_NOTIFY_PRIVATE_TARGETS=1`` in the server's environment allows such
addresses (a deployment whose receivers live on its own network).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import unquote

from twinengine.notify.base import DeliveryError

ALLOW_ENV = "TWIN_NOTIFY_PRIVATE_TARGETS"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not the Internet
#: IPv6 ranges whose last 32 bits are an IPv4 address a connection may end up at
_EMBEDDING = tuple(
    ipaddress.ip_network(n)
    for n in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")
)


def private_allowed() -> bool:
    """Whether the operator allows notifications to private and loopback addresses."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def literal(host: str) -> Address | None:
    """The IP address ``host`` spells (brackets, zone ids and the old IPv4 forms that
    ``inet_aton`` takes — ``127.1``, ``0x7f.1``, ``2130706433`` — included); None for a
    name."""
    name = unquote(host.strip())
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.split("%", 1)[0]  # a zone id (fe80::1%eth0) names an interface, not a host
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if name and all(c.isalnum() or c == "." for c in name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def addresses_of(host: str, port: int | None = None) -> list[Address]:
    """Every address ``host`` stands for: its literal, or all it resolves to now;
    :class:`OSError` when a name does not resolve."""
    found = literal(host)
    if found is not None:
        return [found]
    name = host.strip().rstrip(".") or host
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos))


def refusal(address: Address) -> str | None:
    """Why ``address`` is not a public one (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in _embedded(address):
            if refusal(inner) is not None:
                return f"{address} carries {inner}, which is not a public address"
    for flag, what in (
        ("is_loopback", "a loopback"),
        ("is_link_local", "a link-local"),
        ("is_multicast", "a multicast"),
        ("is_unspecified", "an unspecified"),
        ("is_private", "a private"),
        ("is_reserved", "a reserved"),
        ("is_site_local", "a site-local"),
    ):
        if getattr(address, flag, False):
            return f"{address} is {what} address"
    if address in _SHARED or not address.is_global:
        return f"{address} is not a public address"
    return None


def _embedded(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address leads to, when it embeds some."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo  # the relay's and the client's
    for network in _EMBEDDING:
        if address in network and int(address) > 1:  # :: and ::1 are judged as IPv6
            return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def refused(what: str, host: str) -> DeliveryError:
    """The refusal of a target whose host is not public (naming no address it resolved to)."""
    return DeliveryError(
        f"{what} is refused: {host} is not a public address",
        hint=f"the server sends notifications to public addresses only; an operator may "
        f"allow private ones with {ALLOW_ENV}=1",
    )


def check_host(host: str, what: str, *, must_resolve: bool = False) -> list[Address]:
    """The addresses of ``host``; :func:`refused` when one of them is not public (unless
    the operator allows it). A name that does not resolve passes unless ``must_resolve``
    (what does not resolve cannot be reached)."""
    try:
        addresses = addresses_of(host)
    except (OSError, UnicodeError, ValueError):
        if must_resolve:
            raise DeliveryError(f"{what} failed: {host} does not resolve") from None
        return []
    if not addresses and must_resolve:
        raise DeliveryError(f"{what} failed: {host} has no address")
    if not private_allowed() and any(refusal(a) for a in addresses):
        raise refused(what, host)
    return addresses


def public_address(host: str, port: int, what: str) -> str:
    """The (checked) address to connect to for ``host``; :class:`DeliveryError` naming
    ``what`` when one of its addresses is not public or it does not resolve."""
    return str(check_host(host, what, must_resolve=True)[0])

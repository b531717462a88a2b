"""Where webhooks may go: http(s) URLs whose host resolves only to public addresses.

A host resolving to a loopback, link-local, private, shared (100.64/10), reserved,
multicast or unspecified address is refused unless METERING_WEBHOOK_ALLOW_PRIVATE=1
(local setups and tests), so an endpoint cannot be turned against the service's own
network. The check runs when an endpoint is written and again before every delivery
(a name may resolve elsewhere later).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import urllib.parse
from collections.abc import Mapping

MAX_URL_LENGTH = 2048
ALLOW_PRIVATE = "METERING_WEBHOOK_ALLOW_PRIVATE"


class UnsafeUrl(ValueError):
    """The URL may not receive webhooks; the message says why."""


def allow_private(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(ALLOW_PRIVATE, "") == "1"


def parse(url: str) -> tuple[str, int]:
    """The host and port of a well-formed webhook URL."""
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or c == "\x00" for c in url):
        raise UnsafeUrl(f"an http:// or https:// URL of at most {MAX_URL_LENGTH} characters, no spaces")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("credentials in the URL are not accepted")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("the port is not a number from 0 to 65535") from None
    return parts.hostname, port


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def check(url: str, *, private_allowed: bool) -> None:
    """Raises UnsafeUrl unless `url` may receive webhooks now."""
    host, port = parse(url)
    if private_allowed:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeUrl(f"the host {host!r} does not resolve") from None
    for *_, sockaddr in found:
        if _private(str(sockaddr[0])):
            raise UnsafeUrl(f"the host {host!r} resolves to {sockaddr[0]}, a loopback, link-local or private "
                            f"address (allowed only with {ALLOW_PRIVATE}=1)")

"""Listening addresses: who may share one, and the error that names an address already taken.

gRPC sets SO_REUSEPORT on its listening sockets by default, so a second server would bind an
address already served and the kernel would split connections between the two (two databases,
for unrelated servers). Only the processes of one `metering serve` (METERING_SERVER_PROCESSES > 1)
may share a port: every other server sets `grpc.so_reuseport` to 0, and the multi-process
supervisor checks with a plain bind that the address is free before it starts its processes,
which keep SO_REUSEPORT among themselves. A server binding without SO_REUSEPORT and one binding
with it exclude each other. Left open: two multi-process serves started in the same instant could
both pass the check.
"""

from __future__ import annotations

import errno
import socket


class AddressInUse(OSError):
    """Another process listens on the address; the message names it."""

    def __init__(self, addr: str, setting: str | None = None) -> None:
        where = f" ({setting})" if setting else ""
        super().__init__(errno.EADDRINUSE, f"cannot listen on {addr}: address in use by another process{where}")
        self.addr = addr

    def __str__(self) -> str:
        return str(self.strerror)


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def ensure_free(addr: str, setting: str | None = None) -> None:
    """Raise AddressInUse unless every address HOST:PORT resolves to can be bound now (port 0 always can).

    The probe sets SO_REUSEADDR, as gRPC and uvicorn do (a port in TIME_WAIT is free), and not
    SO_REUSEPORT: on Linux it fails if anything listens there, with or without SO_REUSEPORT."""
    host, port = _split(addr)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return  # the server reports an address it cannot resolve itself
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUse(addr, setting) from None
                if exc.errno != errno.EADDRNOTAVAIL:  # e.g. ::1 on a host without IPv6: gRPC skips it too
                    raise

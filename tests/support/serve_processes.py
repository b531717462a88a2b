"""Looking at a `metering serve` with METERING_SERVER_PROCESSES > 1 from outside: which of
its processes listen on the port, which hold the connections (both from `ss`), and
channels that are known to reach every one of them."""

from __future__ import annotations

import re
import subprocess

import grpc


def accepted(port: int) -> dict[int, int]:
    """Established connections to `port`, counted by the process holding them."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    held: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        held[int(pid)] = held.get(int(pid), 0) + 1
    return held


def listening(port: int) -> set[int]:
    """The processes that listen on `port`."""
    out = subprocess.run(["ss", "-Htlnp", f"( sport = :{port} )"], capture_output=True, text=True, check=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


async def spread_channels(port: int, processes: list[int], at_least: int) -> list[grpc.aio.Channel]:
    """At least `at_least` ready channels to `port`, more until every one of `processes` holds one.

    The kernel picks a SO_REUSEPORT listener by a hash of each connection's addresses, so a
    few connections can all land on one process (6 on one of 2: p = 2/2**6, about 3%; it
    happened in CI). Opening more until each holds one keeps a test about the sharing, not luck."""
    channels: list[grpc.aio.Channel] = []
    while True:
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        await ch.channel_ready()
        channels.append(ch)
        held = accepted(port)
        if len(channels) >= at_least and all(held.get(p, 0) > 0 for p in processes):
            return channels
        assert len(channels) < 64, held  # 64 connections all on one of 2 processes: p = 2**-63

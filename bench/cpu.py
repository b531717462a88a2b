"""CPU time per event of a timed benchmark section, by process group, read from /proc.

A Meter snapshots every process on the machine right before the timed section
(start()) and right after it (stop()); note(n) gives µs per event for each group:

- server:   the server (Stack.server.pid) and all its descendants (the
            METERING_SERVER_PROCESSES children of a multi-process server);
- postgres: every process whose comm is `postgres`: the machine's shared server,
            so its background processes (checkpointer, walwriter, ...) are counted,
            and so are the backends of any other client of that server;
- worker:   the arq worker (Stack.worker.pid) and its descendants;
- client:   the bench process itself (the load generator, all its threads).

Not counted: the gateway, Redis, and kernel work not charged to a process.

CPU is user + sys (utime + stime, fields 14 and 15 of /proc/<pid>/stat, all
threads, in SC_CLK_TCK ticks: 10 ms a process, so short runs are coarse). For
the server, postgres and worker groups the reaped children's CPU (cutime +
cstime, fields 16 and 17) is added too: a process that exits during the run is
gone from the end snapshot, but once its parent (the postmaster, the server
supervisor) reaps it, its whole CPU shows in the parent's cutime + cstime. So
the group's end total minus its start total counts exited processes from the
start snapshot on, and processes born during the run from their birth. Lost:
processes that exit and are not reaped by a member of their group before the
end snapshot (their CPU since the start is not counted); stop() counts
processes gone at the end as `exited`, an upper bound on those.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bench.stack import Stack

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    own: int  # utime + stime, ticks
    reaped: int  # cutime + cstime: waited-for children, ticks


def _read(pid: int) -> Proc:
    with open(f"/proc/{pid}/stat") as f:
        head, _, tail = f.read().rpartition(")")  # comm may contain spaces and parentheses
    fields = tail.split()  # fields[0] is field 3 (state)
    return Proc(pid, int(fields[1]), head.partition("(")[2], int(fields[11]) + int(fields[12]),
                int(fields[13]) + int(fields[14]))


def cpu_seconds(pid: int) -> float:
    """user + sys CPU of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    return _read(pid).own / _TICK


def processes() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                procs[int(name)] = _read(int(name))
            except (OSError, ValueError, IndexError):  # exited meanwhile
                pass
    return procs


def _descendants(procs: dict[int, Proc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    found: set[int] = set()
    todo = [root] if root in procs else []
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


@dataclass
class Meter:
    """roots: group name -> pid of a process counted with its descendants."""

    roots: dict[str, int]
    postgres: bool = True
    client: bool = True
    seconds: dict[str, float] = field(default_factory=dict)  # group -> CPU of the last start()..stop()
    exited: int = 0  # processes of the groups gone by stop(); see the module docstring
    _start: dict[str, dict[int, Proc]] = field(default_factory=dict)

    def _groups(self) -> dict[str, dict[int, Proc]]:
        procs = processes()
        groups = {name: {pid: procs[pid] for pid in _descendants(procs, root)} for name, root in self.roots.items()}
        if self.postgres:
            groups["postgres"] = {p.pid: p for p in procs.values() if p.comm == "postgres"}
        if self.client:  # own CPU only: our children are the stack, measured in their groups
            me = procs[os.getpid()]
            groups["client"] = {me.pid: Proc(me.pid, me.ppid, me.comm, me.own, 0)}
        return groups

    def start(self) -> None:
        self._start = self._groups()

    def stop(self) -> None:
        end = self._groups()
        self.seconds = {name: (sum(p.own + p.reaped for p in end[name].values())
                               - sum(p.own + p.reaped for p in procs.values())) / _TICK
                        for name, procs in self._start.items()}
        # a pid reused during the run would be counted as alive; harmless over seconds
        self.exited = sum(len(procs.keys() - end[name].keys()) for name, procs in self._start.items())

    def note(self, n: int, unit: str = "event") -> str:
        """e.g. `CPU µs/event: server 25, postgres 14, worker 3, client 9 = 51 → 39k/s on 2 cores`."""
        order = ["server", "postgres", "worker", "client"]
        names = sorted(self.seconds, key=lambda name: order.index(name) if name in order else len(order))
        us = {name: self.seconds[name] / n * 1e6 for name in names}
        total, cores = sum(us.values()), os.cpu_count() or 1
        parts = ", ".join(f"{name} {_fmt(v)}" for name, v in us.items())
        rate = cores / total * 1e3 if total > 0 else 0.0  # thousands/s
        allows = f"{rate:,.0f}k/s" if rate >= 10 else f"{rate:.1f}k/s"
        return f"CPU µs/{unit}: {parts} = {_fmt(total)} → {allows} on {cores} cores"


def _fmt(us: float) -> str:
    return f"{us:.0f}" if us >= 10 else f"{us:.1f}"


def stack_meter(st: Stack) -> Meter:
    """server, postgres, worker and client: the groups of a stack's gRPC runs."""
    return Meter({"server": st.server.pid, "worker": st.worker.pid})

"""The children of `up` and of a multi-process `serve`: started so that they die with their
parent (runtime/lifeline.py), watched together with the embedded Postgres and Redis, stopped
in order.

One policy for every part of the stack: when a child exits or an embedded server dies, the
supervisor stops the rest and exits 1, naming what died, so that whatever runs `up` (systemd,
a container runtime, the user) restarts it whole; a restart finds a clean state (the guardian,
the stale-server checks of the embedded servers). Restarting only the part that died was not
chosen: the other processes would keep broken connections (arq's worker exits when Redis goes
away for good) and a crash loop would be hidden behind a healthy-looking up.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Protocol

from server.runtime.lifeline import die_with_parent

log = logging.getLogger(__name__)
CHILD_STOP_SECONDS = 15.0
POLL_SECONDS = 0.2


class Watched(Protocol):
    """An embedded server: EmbeddedPostgres or EmbeddedRedis."""

    @property
    def pid(self) -> int | None: ...

    def alive(self) -> bool: ...


def start_child(argv: list[str], env: Mapping[str, str], *, own_session: bool = False) -> subprocess.Popen[bytes]:
    """`python -m ARGV...`, killed by the kernel if this process dies (on Linux).

    own_session: out of this terminal's process group, so a Ctrl-C reaches only the
    supervisor, which then stops the children in order."""
    return subprocess.Popen([sys.executable, "-m", *argv], env=dict(env), start_new_session=own_session,
                            preexec_fn=die_with_parent())


def stop_on_signals() -> dict[str, int]:
    """SIGINT/SIGTERM set stop["signal"] instead of interrupting (children are stopped in order)."""
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def _dead(children: Mapping[str, subprocess.Popen[bytes]], servers: Mapping[str, Watched]) -> str:
    for name, server in servers.items():
        if not server.alive():
            log.error("%s (pid %s) died; stopping everything (exit 1); a new `metering up` starts it afresh",
                      name, server.pid)
            return name
    for name, proc in children.items():
        if proc.poll() is not None:
            log.error("%s exited with code %s; stopping", name, proc.returncode)
            return name
    return ""


def supervise(children: Mapping[str, subprocess.Popen[bytes]], stop: dict[str, int],
              servers: Mapping[str, Watched] | None = None) -> int:
    """Wait for a stop signal, a child's exit or an embedded server's death, then stop every
    child: 0, or 1 if something died."""
    failed = ""
    while not stop["signal"] and not failed:
        time.sleep(POLL_SECONDS)
        failed = _dead(children, servers or {})
    stop_children(children)
    return 1 if failed else 0


def stop_children(children: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_SECONDS
    for name, proc in children.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name)
            proc.kill()
            proc.wait()

"""Children that die with their parent: the processes `up` and a multi-process `serve` start.

On Linux each child asks the kernel, right after fork and before exec, for SIGKILL when the
thread that forked it ends (prctl PR_SET_PDEATHSIG; kept across exec). If the parent died
between fork and that call, the child is already an orphan: it checks its parent pid and kills
itself. SIGKILL rather than SIGTERM: the parent is gone (a crash, a kill -9, the OOM killer), so
nobody waits for an orderly stop, and SIGKILL bounds the time; nothing is lost by it, since a
server acknowledges an event only once Postgres has committed it. The embedded Postgres and
Redis are not children of this kind (pg_ctl daemonizes Postgres): the guardian stops them
(runtime/guardian.py), and it also kills these children where prctl does not exist.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn for subprocess.Popen (call it from the main thread), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os.kill(os.getpid(), signal.SIGKILL)

    return in_child

"""The guardian of `metering up`: a small process that cleans up after up if up dies.

up starts it first, in a session of its own (a kill of up's process group spares it), with the
read end of a pipe as its stdin and up's data-dir lock (runtime/running.py) as an inherited fd.
up writes `child PID` for each process it starts and `done` once it has stopped everything
itself. When up dies (SIGKILL, OOM killer, crash) the kernel closes the pipe; the guardian reads
end-of-file without `done` and then:

1. kills the children up named, and their children (where the kernel's parent-death signal,
   runtime/lifeline.py, has not already);
2. stops the embedded Postgres and Redis of the data dir, unless another live process holds
   them (Postgres with a fast shutdown, or an immediate one if the checkpoint of the fast one
   takes too long: as safe as a crash, the next start replays the WAL);
3. removes up's state files, and exits, which releases the data-dir lock.

A new `up` on the same data dir waits for that lock, so it starts on a clean state and never
attaches to servers the guardian is stopping.

    python -m server.runtime.guardian DATA_DIR
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import signal
import subprocess
import sys
import time
from typing import IO

import psutil

from metering.logs import configure_logging

log = logging.getLogger(__name__)
# A fast shutdown of Postgres writes a checkpoint, seconds under load on a slow disk: past this
# it becomes an immediate one, so the whole stack is gone within 5 s of up's death.
STOP_SECONDS = 3.0


class Guardian:
    """up's side: start the guardian, name the children, say `done` on a clean exit."""

    def __init__(self, data_dir: pathlib.Path, lock_fd: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.runtime.guardian", str(data_dir)],
            stdin=subprocess.PIPE, pass_fds=(lock_fd,), start_new_session=True,
        )
        assert self.proc.stdin is not None
        self._pipe: IO[bytes] = self.proc.stdin

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError):  # a dead guardian only costs its help
            self._pipe.write(line.encode() + b"\n")
            self._pipe.flush()

    def watch(self, pid: int) -> None:
        self._say(f"child {pid}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def done(self) -> None:
        """up stopped everything itself: the guardian exits without doing anything."""
        self._say("done")
        with contextlib.suppress(OSError):
            self._pipe.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _kill_tree(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.Error):
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        proc.kill()


def clean_up(data_dir: pathlib.Path, children: list[psutil.Process]) -> None:
    """What a dead up left: its children, its embedded servers, its state files; within
    STOP_SECONDS of up's death but for Postgres's immediate shutdown (a fraction of a second)."""
    deadline = time.monotonic() + STOP_SECONDS
    from server.runtime.embedded_postgres import _running, stop_orphaned_postgres
    from server.runtime.embedded_redis import EmbeddedRedis
    from server.runtime.running import remove_state

    left = [child for child in children if _running(child)]  # same pid and start time: not a reused pid
    for child in left:
        log.warning("metering up died: killing its child %d", child.pid)
        _kill_tree(child)
    while any(_running(child) for child in left) and time.monotonic() < deadline:
        time.sleep(0.01)  # not psutil.wait_procs: a dead child stays a zombie until init reaps it
    for stop in (EmbeddedRedis(data_dir).stop_orphan,
                 lambda: stop_orphaned_postgres(data_dir, max(0.5, deadline - time.monotonic()))):
        try:
            stop()
        except Exception:  # go on with the rest; the next up stops what is left
            log.exception("metering up died: cleaning up after it failed")
    remove_state(data_dir)


def main(argv: list[str]) -> int:
    configure_logging()  # as the `up` it guards (which checked the settings)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only end-of-file on stdin ends it
    data_dir = pathlib.Path(argv[1])
    children: list[psutil.Process] = []
    for raw in sys.stdin.buffer:
        word, _, arg = raw.decode().strip().partition(" ")
        if word == "done":
            return 0
        if word == "child":
            with contextlib.suppress(psutil.NoSuchProcess, ValueError):
                children.append(psutil.Process(int(arg)))
    log.warning("metering up (data dir %s) died: stopping what it started", data_dir)
    clean_up(data_dir, children)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Where a running `metering up` is found, and the rule of one `up` per data dir.

- DATA_DIR/up.lock: up holds an exclusive lock (flock) on it while it runs, and so does its
  guardian until it has cleaned up after a dead up (runtime/guardian.py). A second up on the
  same data dir fails naming the first; one that finds only the guardian waits for it.
- DATA_DIR/up.json: where that up serves (gRPC and REST addresses), its pid, and the file its
  master key is kept in (0600; the key itself is never written here nor printed).
- ~/.metering/running/PID.json: the same, one file per running up of the user, so the admin
  verbs find the one that runs without being told its data dir (runtime/admin_cli.py).

A state file counts only while its up runs: its pid is alive and the data-dir lock is held.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import pathlib
import time
from collections.abc import Iterator

from server.runtime.embedded_postgres import _pid_alive

log = logging.getLogger(__name__)
LOCK_NAME, STATE_NAME = "up.lock", "up.json"
CLEANUP_WAIT_SECONDS = 60.0  # how long a new up waits for the guardian of a dead one
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}


class AlreadyRunning(RuntimeError):
    """Another up runs on the data dir; the message says which."""


@dataclasses.dataclass(frozen=True)
class UpState:
    pid: int
    data_dir: str
    grpc_addr: str
    http_addr: str
    master_key_file: str | None  # None: up took METERING_MASTER_KEY from its environment

    @property
    def target(self) -> str:
        """grpc_addr as a client dials it (a wildcard host means this machine)."""
        host, _, port = self.grpc_addr.rpartition(":")
        return f"{_WILDCARDS.get(host, host)}:{port}"


def registry_dir() -> pathlib.Path:
    return pathlib.Path.home() / ".metering" / "running"


def _read(path: pathlib.Path) -> UpState | None:
    try:
        raw = json.loads(path.read_text())
        return UpState(**{f.name: raw[f.name] for f in dataclasses.fields(UpState)})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: pathlib.Path, state: UpState) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state)) + "\n")
    os.replace(tmp, path)


def _lock_held(data_dir: pathlib.Path) -> bool:
    """True if a process holds data_dir's up.lock (tried without waiting, released at once)."""
    try:
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def running_on(data_dir: pathlib.Path) -> UpState | None:
    """The up that runs on data_dir, if one does."""
    state = _read(data_dir / STATE_NAME)
    if state is None or not _pid_alive(state.pid) or not _lock_held(data_dir):
        return None
    return state


def running_ups() -> list[UpState]:
    """Every up of this user that runs now (stale registry entries are removed)."""
    found = []
    for path in sorted(registry_dir().glob("*.json")):
        state = _read(path)
        if state is not None and running_on(pathlib.Path(state.data_dir)) == state:
            found.append(state)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return found


def remove_state(data_dir: pathlib.Path) -> None:
    """Remove up's state file and its registry entry (by up, or by the guardian of a dead up)."""
    state = _read(data_dir / STATE_NAME)
    with contextlib.suppress(OSError):
        (data_dir / STATE_NAME).unlink()
    if state is not None:
        with contextlib.suppress(OSError):
            (registry_dir() / f"{state.pid}.json").unlink()


class Claim:
    """This process's hold on a data dir (see claim())."""

    def __init__(self, data_dir: pathlib.Path, lock_fd: int) -> None:
        self.data_dir = data_dir
        self.lock_fd = lock_fd

    def publish(self, grpc_addr: str, http_addr: str, master_key_file: pathlib.Path | None) -> None:
        state = UpState(os.getpid(), str(self.data_dir), grpc_addr, http_addr,
                        str(master_key_file) if master_key_file else None)
        _write(self.data_dir / STATE_NAME, state)
        try:
            _write(registry_dir() / f"{state.pid}.json", state)
        except OSError as exc:  # e.g. a read-only home: the admin verbs then need --data-dir
            log.warning("cannot register this up under %s: %s", registry_dir(), exc)


@contextlib.contextmanager
def claim(data_dir: pathlib.Path) -> Iterator[Claim]:
    """Hold data_dir's up.lock for the life of this up; AlreadyRunning if another up holds it.
    The guardian of a dead up holds it while it cleans up: then wait for it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    acquired = False
    try:
        deadline = time.monotonic() + CLEANUP_WAIT_SECONDS
        while not acquired:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
            except BlockingIOError:
                other = _read(data_dir / STATE_NAME)
                if other is not None and _pid_alive(other.pid):
                    raise AlreadyRunning(f"metering up (pid {other.pid}) already runs on data dir {data_dir}, "
                                         f"gRPC {other.grpc_addr}") from None
                if time.monotonic() > deadline:
                    raise AlreadyRunning(f"data dir {data_dir} is still locked after {CLEANUP_WAIT_SECONDS:.0f}s "
                                         f"(by the guardian of a metering up that died?)") from None
                time.sleep(0.1)
        remove_state(data_dir)  # left by an up that died with nobody to clean up after it
        yield Claim(data_dir, fd)
    finally:
        if acquired:
            remove_state(data_dir)
        os.close(fd)

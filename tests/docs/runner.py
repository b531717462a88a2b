"""Runs a page's examples in order, as a reader would type them, against real processes.

One `PageRun` per page: its own environment (see `page_env`), a shell state carried from
block to block (every variable a block sets, e.g. KEY, reaches the later blocks and the
environment of the Python ones), background processes stopped when the page ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.docs.pages import Block, Page

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_GRPC_ADDR = "127.0.0.1:50051"  # what the docs write; replaced by the page's own ports
DEFAULT_HTTP_ADDR = "127.0.0.1:8000"
KEY_PLACEHOLDER = "mk_..."  # an API key: replaced by the page's shell variable KEY
BLOCK_TIMEOUT = 120.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_ELLIPSIS = "…"
# Commands a `check` block may hold: the test suite and benchmarks, which take minutes.
_ENV_PREFIX = r"(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"
_PYTEST = re.compile(rf"^{_ENV_PREFIX}(?:\./dev test|(?:\.venv/bin/)?(?:python -m )?pytest)\b")
_BENCH = re.compile(rf"^{_ENV_PREFIX}(?:\.venv/bin/)?python -m bench(?:\.\w+)?(?=\s|$)")


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


class ExampleFailed(AssertionError):
    pass


def page_env(base: Mapping[str, str], *, database_url: str, redis_url: str, grpc_port: int, http_port: int,
             scratch: Path, queue: str) -> dict[str, str]:
    """The reader's environment: theirs less any METERING_* setting (the tests' own
    METERING_TEST_* stay), the venv first on PATH, and this page's services and ports."""
    env = {k: v for k, v in base.items() if not k.startswith("METERING_") or k.startswith("METERING_TEST_")}
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{base.get('PATH', '')}",
        "METERING_DATABASE_URL": database_url,
        "METERING_REDIS_URL": redis_url,
        "METERING_QUEUE_NAME": queue,
        "METERING_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
        "METERING_HTTP_ADDR": f"127.0.0.1:{http_port}",
        "METERING_DATA_DIR": str(scratch / "data"),
        "METERING_JOURNAL_DIR": str(scratch / "journal"),
        "METERING_LOG_LEVEL": "WARNING",
        "PWD": str(ROOT),  # where the blocks start (a block may cd; the next ones start there)
        "TMPDIR": str(scratch),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.pop("VIRTUAL_ENV", None)
    return env


def check_form(command: str) -> str:
    """The cheap form of one command of a `check` block: pytest runs only collect (and fail
    when nothing is selected), benchmarks only parse their options."""
    command = shlex.join(shlex.split(command, comments=True))  # without its comment, whatever it holds
    if _PYTEST.match(command):
        return command + " --collect-only -q"
    if _BENCH.match(command):
        return command + " --help"
    raise ExampleFailed(f"a check block may hold only pytest or bench commands, not {command!r}")


def _commands(code: str) -> list[str]:
    """Logical lines (backslash continuations joined), blank lines and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line for line in joined.split("\n") if line.strip() and not line.lstrip().startswith("#")]


def matches(expected: str, actual: str) -> bool:
    """`actual` is what `expected` shows: line by line, trailing spaces and blank edge lines
    ignored, each `…` standing for any text (also several lines)."""

    def norm(text: str) -> str:
        lines = (re.sub(r"[ \t]+", " ", line).rstrip() for line in text.strip("\n").split("\n"))
        return "\n".join(lines).strip("\n")

    pattern = ".*?".join(re.escape(part) for part in norm(expected).split(_ELLIPSIS))
    return re.fullmatch(pattern, norm(actual), re.S) is not None


def _ready(url: str) -> bool:
    if url.startswith("grpc://"):
        with grpc.insecure_channel(url.removeprefix("grpc://")) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    try:
        with _DIRECT.open(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


class PageRun:
    def __init__(self, page: Page, env: dict[str, str], scratch: Path, grpc_port: int, http_port: int) -> None:
        self.page = page
        self.env = env  # the shell state: updated by every foreground shell block
        self.scratch = scratch
        self.addresses = {DEFAULT_GRPC_ADDR: f"127.0.0.1:{grpc_port}", DEFAULT_HTTP_ADDR: f"127.0.0.1:{http_port}"}
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.skipped: list[str] = []  # "page:line needs grpcurl"
        self.ran = 0

    def where(self, block: Block) -> str:
        path = self.page.path
        return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{block.line}"

    def substitute(self, text: str, *, key: bool = False) -> str:
        for default, actual in self.addresses.items():
            text = text.replace(default, actual)
        if key and KEY_PLACEHOLDER in text:
            if not self.env.get("KEY"):
                raise ExampleFailed(f"{self.page.path.name}: `{KEY_PLACEHOLDER}` used before a block set KEY")
            text = text.replace(KEY_PLACEHOLDER, self.env["KEY"])
        return text

    @contextlib.contextmanager
    def running(self) -> Iterator[PageRun]:
        try:
            if self.page.service:
                self.start([str(VENV_BIN / "metering"), "up"], f"http://{DEFAULT_HTTP_ADDR}/healthz", "service")
            yield self
        finally:
            self.stop_all()

    def run_all(self) -> None:
        for block in self.page.blocks:
            missing = [p for p in block.requires if shutil.which(p, path=self.env["PATH"]) is None]
            if missing:
                self.skipped.append(f"{self.where(block)} needs {', '.join(missing)}")
                continue
            self.run(block)

    def run(self, block: Block) -> None:
        if block.background:
            script = self._shell_script(block, dump=None)
            self.start(["bash", str(script)], block.ready, f"line{block.line}")
            self.ran += 1
            return
        if block.language == "python":
            path = self.scratch / f"example_{block.line}.py"
            path.write_text(self.substitute(block.code, key=True))
            argv = [sys.executable, str(path)]
        else:
            dump = self.scratch / "env.dump"
            argv = ["bash", str(self._shell_script(block, dump=dump))]
        done = subprocess.run(argv, cwd=self.env.get("PWD", ROOT), env=self.env, capture_output=True,
                              timeout=BLOCK_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        if done.returncode != 0:
            raise ExampleFailed(f"{self.where(block)} exited {done.returncode}\n--- block:\n{block.code}"
                                f"--- stdout:\n{out}\n--- stderr:\n{err}")
        if block.language == "shell":
            self.env = dict(item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        if block.expected is not None and not matches(self.substitute(block.expected), out):
            raise ExampleFailed(f"{self.where(block)}: its output is not what the page shows\n--- shown:\n"
                                f"{block.expected}--- printed:\n{out}\n--- stderr:\n{err}")
        self.ran += 1

    def _shell_script(self, block: Block, dump: Path | None) -> Path:
        code = block.code
        if block.check:
            code = "\n".join(check_form(command) for command in _commands(code)) + "\n"
        lines = ["set -a -eo pipefail", self.substitute(code)]
        if dump is not None:  # the variables the block set, for the next blocks
            lines.append(f"env -0 > {shlex.quote(str(dump))}")
        path = self.scratch / f"example_{block.line}.sh"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, argv: list[str], ready: str, name: str) -> None:
        """Start a long-running command (own process group) and wait until `ready` answers."""
        log = self.scratch / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=self.env.get("PWD", ROOT), env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.background.append((proc, log))
        url = self.substitute(ready)
        deadline = time.monotonic() + READY_TIMEOUT
        while not _ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited {proc.returncode}" if proc.poll() is not None else "not ready in time"
                raise ExampleFailed(f"{self.page.path.name}: {' '.join(argv)}: {state} ({url})\n{log.read_text()}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        """SIGINT to each background group (Ctrl-C, as the docs say), then kill what is left:
        a command that does not stop with everything it started fails the page."""
        stubborn = []
        while self.background:
            proc, log = self.background.pop()
            descendants = _descendants(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _, alive = psutil.wait_procs(descendants, timeout=STOP_TIMEOUT)
            for leftover in alive:
                with contextlib.suppress(psutil.Error):
                    leftover.kill()
            if alive:
                stubborn.append(f"{log.name}: {len(alive)} processes ignored Ctrl-C\n{log.read_text()}")
        if stubborn:
            raise ExampleFailed("\n".join(stubborn))


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []

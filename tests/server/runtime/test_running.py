"""One `up` per data dir (server/runtime/running.py): a second one fails naming the first,
and a state file counts only while the lock of its data dir is held."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.runtime import running
from tests.server.runtime import up_process

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def scratch() -> Iterator[Path]:
    with up_process.scratch_dir("metering-running-") as path:
        yield path


def test_a_second_up_on_a_data_dir_in_use_fails_naming_the_first(
    scratch: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(scratch))  # where ups register: this test's own
    data_dir = scratch / "data"
    env = up_process.clean_env(scratch, METERING_DATABASE_URL="postgresql://nobody@127.0.0.1:1/x",
                               METERING_REDIS_URL="redis://127.0.0.1:1/0", METERING_GRPC_ADDR="127.0.0.1:0",
                               METERING_HTTP_ADDR="127.0.0.1:0")
    with running.claim(data_dir) as held:  # this process plays the running up
        held.publish("127.0.0.1:50999", "127.0.0.1:8999", None)
        assert running.running_on(data_dir) is not None
        assert [u.data_dir for u in running.running_ups()] == [str(data_dir)]
        second = subprocess.run([sys.executable, "-m", "server.runtime.cli", "--data-dir", str(data_dir), "up"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode != 0
        assert "already runs on data dir" in second.stderr and "127.0.0.1:50999" in second.stderr, second.stderr
    assert running.running_on(data_dir) is None  # released: the state is gone with the lock
    assert not (data_dir / running.STATE_NAME).exists() and running.running_ups() == []

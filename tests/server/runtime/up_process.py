"""What the tests of `metering up` as a real process add to bench/stress/up.py's helpers: a data
dir the embedded Postgres can reach, and a user's environment of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temp dir straight under /tmp: the embedded Postgres runs as another user when the tests
    run as root, and pytest keeps its own temp root private (0700), out of that user's reach."""
    path = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """The test's environment less every METERING_* setting, with a HOME of its own (where up
    registers, runtime/running.py) and these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METERING_") and k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(home), METERING_LOG_LEVEL="INFO", PYTHONDONTWRITEBYTECODE="1", **settings)
    return env

"""The gateway's malloc thresholds: a ~6 MB reply built and freed again and again reuses its
memory instead of faulting fresh pages in every time (gateway/http/memory.py). Each case runs in
a process of its own, so the malloc state is its own; page faults are counted, not time."""

from __future__ import annotations

import subprocess
import sys

import pytest

REPLIES = """
import resource, sys
from gateway.http.memory import keep_freed_memory
print(keep_freed_memory() if sys.argv[1] == "tuned" else None)

def reply() -> int:  # the shape of an OpenAI usage page: many small parts joined into one body
    parts = [b"x" * 600 for _ in range(10_000)]
    return len(b"[" + b",".join(parts) + b"]")

for _ in range(3):
    reply()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    reply()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_reply(mode: str) -> tuple[str, float]:
    done = subprocess.run([sys.executable, "-c", REPLIES, mode], capture_output=True, text=True, timeout=60,
                          check=True, env={"PATH": "/usr/bin:/bin"})
    applied, faults = done.stdout.split()
    return applied, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_replies_reuse_memory() -> None:
    applied, tuned = _faults_per_reply("tuned")
    _, default = _faults_per_reply("default")
    assert applied == "True"
    assert default > 1_000  # glibc's defaults: a 6 MB body's pages are faulted in afresh on every reply
    assert tuned < 100, (tuned, default)


def test_glibc_variables_set_by_the_operator_win() -> None:
    code = "from gateway.http.memory import keep_freed_memory; print(keep_freed_memory())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          env={"PATH": "/usr/bin:/bin", "MALLOC_TRIM_THRESHOLD_": "0"})
    assert done.stdout.strip() == "False"

"""Flush at interpreter exit: every open client registers a hook, run once by atexit.

The delivery threads are daemon threads, so the interpreter does not wait for them before
running atexit hooks; the hooks then close each client, which delivers (or journals) what is
still buffered. Hooks run newest client first.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
_lock = threading.Lock()
_hooks: dict[int, Callable[[], None]] = {}


def register(owner: object, hook: Callable[[], None]) -> None:
    with _lock:
        _hooks[id(owner)] = hook


def unregister(owner: object) -> None:
    with _lock:
        _hooks.pop(id(owner), None)


def run_hooks() -> None:
    with _lock:
        hooks = list(_hooks.values())[::-1]
        _hooks.clear()
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("metering: flushing at exit failed")


atexit.register(run_hooks)

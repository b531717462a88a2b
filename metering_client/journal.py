"""The local journal: events the server could not take in time, kept until it acknowledges them.

An append-only JSON-lines file, one event a line, fsync'd before the events count as journaled:
    {"v": 1, "k": "<key fingerprint>", "at": "<when journaled>", "event": {<UsageEvent as JSON>}}

- Appends take an exclusive flock on the file (several processes may share it) and check that the
  path still names the locked file, since a replay may have replaced it.
- One process at a time replays (a non-blocking flock on `<journal>.lock`, the "replay lease"). It
  snapshots the size, sends lines oldest first with their original request_ids, and only then drops
  the acknowledged prefix: truncating the file when nothing came after, else replacing it with the
  rest (written to a temporary file, fsync'd, renamed). A crash in between means a line is sent
  again, which the server reports as a duplicate: nothing lost, nothing doubled.
- Lines for another API key (`k` differs: the file was shared by configuration) are never sent and
  always kept. Lines that do not parse, and events the server rejected on replay, go to
  `<journal>.rejected` (same format plus the reason) so nothing vanishes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from metering.v1 import event_pb2

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: single-process use only
    fcntl = None  # type: ignore[assignment]  # typeshed has no optional-module form for fcntl

log = logging.getLogger(__name__)
ENV_JOURNAL_DIR = "METERING_JOURNAL_DIR"
VERSION = 1


def fingerprint(api_key: str) -> str:
    """A short, non-secret tag of the key: a journal is only replayed with the key that wrote it."""
    return hashlib.sha256(b"metering-journal\0" + api_key.encode()).hexdigest()[:16]


def default_dir() -> Path:
    """$METERING_JOURNAL_DIR, else $XDG_STATE_HOME/metering, else ~/.local/state/metering; a private
    directory under the system temp dir when none of those can be created."""
    candidates = []
    if os.environ.get(ENV_JOURNAL_DIR):
        candidates.append(Path(os.environ[ENV_JOURNAL_DIR]))
    state = os.environ.get("XDG_STATE_HOME")
    candidates.append(Path(state) / "metering" if state else Path.home() / ".local" / "state" / "metering")
    uid = os.getuid() if hasattr(os, "getuid") else 0
    candidates.append(Path(tempfile.gettempdir()) / f"metering-{uid}")
    for path in candidates:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    raise OSError("no writable directory for the metering journal; set " + ENV_JOURNAL_DIR)


def default_path(api_key: str) -> Path:
    return default_dir() / f"journal-{fingerprint(api_key)}.jsonl"


@dataclasses.dataclass
class Chunk:
    """Lines [.., end) of a replay snapshot: the events to send, lines of another key to keep, and
    unreadable lines (dead-lettered once the chunk is done)."""

    events: list[event_pb2.UsageEvent] = dataclasses.field(default_factory=list)
    end: int = 0  # byte offset just after the chunk's last line
    kept: list[bytes] = dataclasses.field(default_factory=list)
    unreadable: list[bytes] = dataclasses.field(default_factory=list)


class Journal:
    def __init__(self, path: str | os.PathLike[str], api_key: str) -> None:
        self.path = Path(path)
        self.key = fingerprint(api_key)
        self.rejected_path = self.path.with_name(self.path.name + ".rejected")
        self._lease_path = self.path.with_name(self.path.name + ".lock")
        self._lock = threading.Lock()  # flock between threads of one process, made explicit

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    # -- appending ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """An fd of the current journal file, exclusively locked (created if missing)."""
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                    if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)  # a replay replaced the file while we waited: lock the new one
            try:
                yield fd
            finally:
                os.close(fd)  # releases the flock

    def _line(self, event: event_pb2.UsageEvent, **extra: Any) -> bytes:
        record = {
            "v": VERSION, "k": self.key, "at": dt.datetime.now(dt.UTC).isoformat(),
            "event": json_format.MessageToDict(event, preserving_proto_field_name=True),
            **extra,
        }
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"

    def append(self, events: Sequence[event_pb2.UsageEvent]) -> None:
        """Durably append events (fsync'd when this returns). Raises OSError if that is impossible."""
        if not events:
            return
        data = b"".join(self._line(e) for e in events)
        with self._locked() as fd:
            fresh = os.fstat(fd).st_size == 0
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        if fresh:  # the file may be new: make its directory entry durable too
            _fsync_dir(self.path.parent)

    def dead_letter(self, lines: Sequence[bytes]) -> None:
        if not lines:
            return
        with open(self.rejected_path, "ab") as f:
            f.write(b"".join(lines))
            f.flush()
            os.fsync(f.fileno())

    def reject_line(self, event: event_pb2.UsageEvent, field: str, reason: str, message: str) -> bytes:
        return self._line(event, field=field, reason=reason, message=message)

    # -- replaying ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self) -> Iterator[bool]:
        """True if this process may replay now (nobody else is replaying this journal)."""
        if fcntl is None:  # pragma: no cover
            yield True
            return
        self._lease_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lease_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def snapshot(self) -> int:
        """The size to replay up to: only whole lines, since appends hold the lock while writing."""
        if not self.path.exists():
            return 0
        with self._locked() as fd:
            return os.fstat(fd).st_size

    def chunks(self, end: int, max_items: int, max_bytes: int) -> Generator[Chunk, None, None]:
        """The journal's lines up to offset `end`, oldest first, in sendable chunks."""
        if end <= 0:
            return
        with open(self.path, "rb") as f:
            offset = 0
            chunk, size = Chunk(), 0
            while offset < end:
                line = f.readline()
                if not line:
                    break
                offset += len(line)
                chunk.end = offset
                try:
                    record = json.loads(line)
                    if record.get("k") != self.key:
                        chunk.kept.append(line)
                    else:
                        chunk.events.append(json_format.ParseDict(record["event"], event_pb2.UsageEvent()))
                        size += len(line)
                except (ValueError, KeyError, TypeError, AttributeError, json_format.ParseError):
                    chunk.unreadable.append(line if line.endswith(b"\n") else line + b"\n")
                if len(chunk.events) >= max_items or size >= max_bytes:
                    yield chunk
                    chunk, size = Chunk(), 0
            if chunk.end:
                yield chunk

    def drop_prefix(self, end: int, kept: Sequence[bytes]) -> None:
        """Remove lines [0, end) (acknowledged by the server), keeping `kept` lines of that range."""
        if end <= 0:
            return
        with self._locked() as fd:
            total = os.fstat(fd).st_size
            if total <= end and not kept:
                os.ftruncate(fd, 0)
                os.fsync(fd)
                return
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as out, os.fdopen(os.dup(fd), "rb") as src:
                out.write(b"".join(kept))
                src.seek(end)
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)  # waiting appenders notice the new inode and re-lock
            _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # pragma: no cover
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_all(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of a journal or dead-letter file, for inspection and tests."""
    try:
        with open(path, "rb") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


"""Invalidations across processes and replicas (DESIGN §10), by Postgres LISTEN/NOTIFY, and
whether Postgres can be reached.

A change to tenant state that a process may hold in memory (an API key, an organization's price
book, its budgets) sends a notification on CHANNEL in the transaction that makes it (`send`):
Postgres delivers it to every listening session when, and only if, that transaction commits.
Each server process keeps one connection listening (`Listener`) and hands each notification to
the subscribers of its topic, which drop or reload what they hold.

Notifications sent while the listener is not connected are lost. So `mark()` and `unbroken()`
tell a cache whether it heard every notification since it read an entry (else it keeps the entry
only for its short TTL), and each (re)connection hands every subscriber `Change(topic, None)`:
anything may have changed meanwhile, drop it all. The connection drops when Postgres closes it,
when a ping (every `ping_seconds`) gets no answer within `ping_timeout`, or when the network
fails; it is opened again with backoff, and the `on_state` observers (the gRPC health service)
hear when Postgres stops and starts answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from metering.waits import wait_set
from server.storage.db import q

log = logging.getLogger(__name__)
CHANNEL = "metering_invalidate"
APPLICATION_NAME = "metering-listen"  # as pg_stat_activity shows the listening sessions

# Postgres out of reach, at any point: refused, reset or timed out (OSError), the connection
# closed (InterfaceError, class 08), the session ended by the server (57P01 admin shutdown, 57P02
# crash, 57P05 idle timeout) or refused during a stop (57P03), or a pooled connection whose
# session ended while it idled, handed out before asyncpg saw it close (InternalClientError
# "cannot switch to state 12; another operation (2) is in progress").
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError, asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.CannotConnectNowError,
    asyncpg.IdleSessionTimeoutError,
)


class Topic(enum.StrEnum):
    API_KEY = "api_key"  # subject: the api_key_id
    PRICE_BOOK = "price_book"  # the organization's price versions (its revision moved)
    BUDGETS = "budgets"  # the organization's budgets (its budget book's revision moved)


@dataclasses.dataclass(frozen=True)
class Change:
    """What changed. org_id None: anything of the topic (notifications may have been missed);
    subject "": anything of the topic in the organization."""

    topic: Topic
    org_id: int | None
    subject: str = ""

    def payload(self) -> str:
        return f"{self.topic}:{'' if self.org_id is None else self.org_id}:{self.subject}"

    @classmethod
    def parse(cls, payload: str) -> Change | None:
        topic, _, rest = payload.partition(":")
        org, _, subject = rest.partition(":")
        try:
            return cls(Topic(topic), int(org) if org else None, subject)
        except ValueError:
            return None


async def send(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, topic: Topic, org_id: int,
               subject: str = "") -> None:
    """Notify every listener of a change, from inside the transaction that makes it: delivered
    when that transaction commits, never if it rolls back."""
    await conn.execute(q("notify"), CHANNEL, Change(topic, org_id, subject).payload())


Subscriber = Callable[[Change], None]
StateObserver = Callable[[bool], Awaitable[None]]


class Listener:
    """One connection per process that listens on CHANNEL and pings Postgres."""

    def __init__(self, dsn: str, *, ping_seconds: float = 1.0, ping_timeout: float = 3.0,
                 backoff: tuple[float, float] = (0.05, 1.0), connect_timeout: float = 5.0) -> None:
        """backoff: the first and the longest wait between attempts to connect."""
        self.dsn = dsn
        self.ping_seconds = ping_seconds
        self.ping_timeout = ping_timeout
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self._subscribers: dict[Topic, list[Subscriber]] = {}
        self._observers: list[StateObserver] = []
        self._epoch = 0  # counts connections made and lost: a mark names one connection
        self._connected = False
        self._first = asyncio.Event()  # set after the first attempt to connect
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    # --- what caches and health use ---------------------------------------------------------

    def subscribe(self, topic: Topic, subscriber: Subscriber) -> None:
        """Call `subscriber` with each Change of `topic` (in the event loop; it must not block)."""
        self._subscribers.setdefault(topic, []).append(subscriber)

    def on_state(self, observer: StateObserver) -> None:
        """Await `observer(True)` when Postgres answers again, `observer(False)` when it stops."""
        self._observers.append(observer)

    @property
    def connected(self) -> bool:
        """Listening now (so Postgres answered within the last ping)."""
        return self._connected

    def mark(self) -> int | None:
        """Taken before reading something to keep: the current connection, or None if not listening."""
        return self._epoch if self._connected else None

    def unbroken(self, mark: int | None) -> bool:
        """Every notification since `mark` was taken has been heard: listening then and since."""
        return mark is not None and self._connected and mark == self._epoch

    # --- the connection ---------------------------------------------------------------------

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; waits (up to `wait` seconds) for the first attempt to connect."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="metering-listener")
        await wait_set(self._first, wait)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def _run(self) -> None:
        delay = self.backoff[0]
        logged = False  # this outage has been logged
        while True:
            try:
                await self._listen()
            except CONNECTION_LOST + (asyncpg.PostgresError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug: never stop listening for it
                log.exception("the notification listener failed")
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._first.set()
                was_up = self._connected
                await self._lost()
            if was_up:
                delay, logged = self.backoff[0], False
            if not logged:
                log.warning("Postgres notifications not heard (%s): cached keys, prices and budgets fall back "
                            "to their short TTL until the listener reconnects", reason)
                logged = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _listen(self) -> None:
        """One connection, from connecting to its loss (which raises)."""
        conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout,
                                     server_settings={"application_name": APPLICATION_NAME})
        self._conn = conn
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _: closed.set())
        await conn.add_listener(CHANNEL, self._deliver)
        await self._found()
        while True:
            await wait_set(closed, self.ping_seconds)
            if closed.is_set() or conn.is_closed():
                raise ConnectionResetError("the listening connection closed")
            await conn.fetchval(q("ping"), timeout=self.ping_timeout)

    async def _found(self) -> None:
        """Listening again: whatever was sent while not is lost, so everything is dropped."""
        self._epoch += 1
        self._connected = True
        self._first.set()
        log.info("listening for Postgres notifications on %s", CHANNEL)
        for topic in Topic:
            self._dispatch(Change(topic, None))
        await self._tell(True)

    async def _lost(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        if self._connected:
            self._epoch += 1
            self._connected = False
            await self._tell(False)

    async def _tell(self, up: bool) -> None:
        for observer in self._observers:
            try:
                await observer(up)
            except Exception:
                log.exception("a Postgres state observer failed")

    def _deliver(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        change = Change.parse(str(payload))
        if change is None:
            log.warning("ignored a notification on %s: %.100r", channel, payload)
            return
        self._dispatch(change)

    def _dispatch(self, change: Change) -> None:
        for subscriber in self._subscribers.get(change.topic, ()):
            try:
                subscriber(change)
            except Exception:
                log.exception("a subscriber of %s failed", change.topic)

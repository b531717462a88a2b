"""BudgetService.Check: may this usage happen? Exact, and free of races.

For the budgets covering the usage (server/budgets/scope.py), a Check

1. takes each budget's settle_seq as the last critical section of this process saw it,
   or reads it (budget_seqs, with the organization's budget revision);
2. reads each budget's usage of the period from the query engine (server/budgets/usage.py),
   in a snapshot taken after the settle_seqs of step 1 were read (Checks of the same
   budgets that arrive while one reads share the next reading: server/budgets/shared.py);
3. runs its critical section, one statement that verifies the organization's budget
   revision and the settle_seqs of step 1, sums the open holds and decides
   (metering_budget_verdicts). A reserving Check's also locks the budgets' rows in
   budget_id order first and inserts the reservation and its holds if every enforced
   budget admits it (metering_budget_reserve; the concurrent ones of this process share
   one transaction, server/budgets/reserve.py). One without a reservation locks and writes
   nothing (budget_read): its reads are of one snapshot.

Why no interleaving admits more than a limit. Every reservation of a budget is inserted
under its row lock, so reservations of one budget are serialized, across processes and
replicas alike: each sees the holds of all earlier ones. The usage of step 2 and the
holds of step 3 are read at different moments; what could make them disagree is a
reservation settled in between (its event absent from the snapshot, its hold already
gone: counted nowhere). Settling and releasing remove holds only under the same row
locks and move settle_seq (metering_budget_close, in the transaction that writes the
settling event), so a settlement that committed after the settle_seq of step 1 was read
fails the verification and the Check starts again (with the settle_seq the failed
critical section read); one that committed before is in both readings. Holds that
expire are judged at the Check's own `now` throughout. Any other event written
meanwhile is simply later than the Check's snapshot: the Check is ordered before it, and
the overshoot it may cause is usage recorded without a reservation, which the next Check
reports. After three such restarts (a budget settling faster than it is checked), the
Check takes the row locks first and reads the usage while holding them, so it cannot
lose again.

Postgres unreachable: each covering budget known from this server's copy
(server/budgets/book.py) answers by its on_unavailable policy; with no copy, the Check
allows (fail open). The answer is marked degraded and says which happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import logging
from collections.abc import Callable, Sequence

import asyncpg
import grpc

from metering.v1 import budgets_pb2
from server.budgets import validation
from server.budgets.book import Books
from server.budgets.budget import Budget
from server.budgets.reserve import Database, Item, Reserver, reserve
from server.budgets.scope import Usage, usage_scope
from server.budgets.shared import SharedReads
from server.budgets.state import State, admission, state, unavailable
from server.budgets.usage import Reading, Settled, read
from server.core.errors import InvalidArgument, MeteringError
from server.core.principal import Principal
from server.ingest.validation import MAX_ID_LENGTH
from server.query.engine import QueryEngine
from server.storage.db import q
from server.tenants.credentials import random_text

log = logging.getLogger(__name__)

# What "Postgres cannot be reached" looks like from asyncpg.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
)
OPTIMISTIC_ATTEMPTS = 3
LOCKED_ATTEMPTS = 3
DEFAULT_TIMEOUT = 10.0  # seconds a Check waits for Postgres before answering degraded
DEADLINE_SHARE = 0.8  # of the time left before the caller's deadline, if it set one
MAX_KNOWN_SEQS = 100_000
NO_ESTIMATE = validation.Estimate(decimal.Decimal(0), {})


class Contended(MeteringError):
    """The organization's budgets kept changing during a Check: retry."""

    code = grpc.StatusCode.ABORTED
    reason = "CONTENDED"


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    states: list[State]
    reservation_id: str = ""
    expires_at: dt.datetime | None = None
    degraded: bool = False
    degraded_reason: str = ""


@dataclasses.dataclass(frozen=True)
class Ask:
    """What one evaluation asks of the critical section."""

    estimate: validation.Estimate = NO_ESTIMATE
    reserve: bool = False
    ttl: dt.timedelta = validation.DEFAULT_TTL
    request_id: str | None = None
    owner: Principal | None = None  # who takes the reservation


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The budgets' settle_seqs, then their usage read after them, at `now` (ids: the budgets
    still there, in budget_id order)."""

    now: dt.datetime
    ids: list[str]
    seqs: list[int]
    readings: list[Reading]


class _Retry(Exception):
    def __init__(self, budgets_changed: bool) -> None:
        self.budgets_changed = budgets_changed


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Checker:
    def __init__(self, pool: asyncpg.Pool, engine: QueryEngine, books: Books, *,
                 clock: Callable[[], dt.datetime] = _utcnow, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.pool = pool
        self.engine = engine
        self.books = books
        self.clock = clock
        self.timeout = timeout
        # A locked evaluation holds a connection while it reads the usage on another:
        # at most half the pool does, so the readers always find one.
        self._locked = asyncio.Semaphore(max(1, (pool.get_max_size() - 1) // 2))
        self._known_seqs: dict[tuple[int, str], int] = {}  # (org_id, budget_id) -> settle_seq (_seqs)
        self.reserver = Reserver(pool)
        self._shared: SharedReads[Snapshot] = SharedReads()
        self._settled = Settled()  # readings of unchanged periods (server/budgets/usage.py)
        self._abandoned: set[asyncio.Future[Verdict]] = set()  # checks that timed out, still cancelling

    async def close(self) -> None:
        await self.reserver.close()
        if self._abandoned:
            await asyncio.wait(self._abandoned, timeout=1)

    async def check(self, principal: Principal, request: budgets_pb2.CheckRequest,
                    time_left: float | None = None) -> Verdict:
        """time_left: seconds until the caller's deadline; Postgres not answering within most
        of it (or within self.timeout) gives a degraded answer rather than none."""
        usage = usage_scope(request, principal)
        ask = Ask(validation.estimate(request), request.reserve, validation.ttl(request),
                  _request_id(request.request_id), principal)
        timeout = self.timeout if time_left is None else min(self.timeout, time_left * DEADLINE_SHARE)
        deciding = asyncio.ensure_future(self._decide(principal, ask, usage=usage))
        try:
            # shielded: on timeout the answer does not wait for the abandoned reads to be cancelled
            # (a silent network delays even the cancel request); they finish in the background
            async with asyncio.timeout(timeout):
                return await asyncio.shield(deciding)
        except UNAVAILABLE as exc:
            if not deciding.done():
                deciding.cancel()
                self._abandoned.add(deciding)
                deciding.add_done_callback(self._abandoned.discard)
            log.warning("budget check degraded: database unavailable (%s)", type(exc).__name__)
            waited = isinstance(exc, TimeoutError)
            return self._degraded(principal.org_id, usage, f"no answer within {timeout:.3g} s" if waited
                                  else "cannot reach it")

    async def states(self, principal: Principal, budgets: Sequence[Budget]) -> list[State]:
        """The state of each budget's current period, as a Check without an estimate sees it."""
        if not budgets:
            return []
        return (await self._decide(principal, Ask(), budgets=sorted(budgets, key=lambda b: b.budget_id))).states

    async def _decide(self, principal: Principal, ask: Ask, *, usage: Usage | None = None,
                      budgets: list[Budget] | None = None) -> Verdict:
        """The covering budgets of `usage` (from the organization's book, verified), or the
        given `budgets` (verified by their settle_seqs alone), evaluated until no
        settlement or budget change got in between."""
        for attempt in range(OPTIMISTIC_ATTEMPTS + LOCKED_ATTEMPTS):
            revision = None
            chosen = budgets or []
            if usage is not None:
                book = await self.books.get(principal.org_id)
                revision, chosen = book.revision, book.index.covering(usage)
            try:
                if attempt < OPTIMISTIC_ATTEMPTS:
                    return await self._evaluate(self.pool, principal, chosen, revision, ask)
                async with self._locked, self.pool.acquire() as conn, conn.transaction():
                    await conn.execute(q("lock_budgets"), principal.org_id, [b.budget_id for b in chosen])
                    return await self._evaluate(conn, principal, chosen, revision, ask)
            except _Retry as retry:
                if retry.budgets_changed:
                    self.books.forget(principal.org_id)
            except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
                pass  # a concurrent Check with the same request_id won; a deadlock with a writer
        raise Contended("the budgets changed during the check; retry")

    async def _snapshot(self, db: Database, principal: Principal, budgets: list[Budget],
                        revision: int | None) -> Snapshot:
        """What the critical section verifies and decides on: the settle_seqs, then the usage."""
        now = self.clock()
        seqs = await self._seqs(db, principal.org_id, budgets, revision)
        if None in seqs:  # deleted since they were read (a book's would have moved its revision)
            budgets = [b for b, seq in zip(budgets, seqs, strict=True) if seq is not None]
        readings = await self._read(principal, budgets, now, one_at_a_time=db is not self.pool) if budgets else []
        return Snapshot(now, [b.budget_id for b in budgets], [seq for seq in seqs if seq is not None], readings)

    async def _evaluate(self, db: Database, principal: Principal, budgets: list[Budget],
                        revision: int | None, ask: Ask) -> Verdict:
        if db is self.pool:  # concurrent Checks of the same budgets share one reading (server/budgets/shared.py)
            key = (principal.org_id, revision, tuple(b.budget_id for b in budgets))
            snap = await self._shared.read(key, lambda: self._snapshot(db, principal, budgets, revision))
        else:
            snap = await self._snapshot(db, principal, budgets, revision)
        now, ids, readings = snap.now, snap.ids, snap.readings
        admissions = [admission(r, ask.estimate.of(r.budget)) for r in readings]
        verdicts = ([a.headroom for a in admissions], [a.strict for a in admissions],
                    [a.enforce for a in admissions], [a.blocked for a in admissions])
        if ask.reserve:
            assert revision is not None
            owner = ask.owner or principal
            item = Item(principal.org_id, now, revision, "res_" + random_text(24), ask.request_id,
                        _whole_second(now + ask.ttl),
                        owner.api_key_id, owner.user_id, ids, snap.seqs, *verdicts, [a.amount for a in admissions])
            row = await (self.reserver.submit(item) if db is self.pool else _one(db, item))
        else:
            read_row = await db.fetchrow(q("budget_read"), principal.org_id, now, revision, ids, snap.seqs,
                                         *verdicts)
            assert read_row is not None
            row = read_row
        self._remember(principal.org_id, ids, row["seqs"])
        outcome = row["outcome"]
        if outcome in ("changed", "stale"):
            raise _Retry(budgets_changed=outcome == "changed")
        granted = outcome in ("reserved", "existing")
        admits = [True] * len(ids) if outcome == "existing" else row["admits"]
        states = [state(reading, held, fits or granted, admitted) for reading, held, fits, admitted
                  in zip(readings, row["held"], row["fits"], admits, strict=True)]
        return Verdict(granted or all(admits), states, row["reservation_id"] or "", row["expires_at"])

    async def _seqs(self, db: Database, org_id: int, budgets: list[Budget], revision: int | None) -> list[int | None]:
        """Each budget's settle_seq as read before the usage: the last value a critical section
        of this process saw, else read now (and always under the locks of a locked evaluation).
        Any value read before the usage's snapshot will do: the critical section proceeds only
        if the budget still has it, so nothing settled between that read and the locks."""
        if not budgets:
            return []
        known = [self._known_seqs.get((org_id, b.budget_id)) for b in budgets]
        if db is self.pool and None not in known:
            return known
        row = await db.fetchrow(q("budget_seqs"), org_id, [b.budget_id for b in budgets])
        assert row is not None
        if revision is not None and row["revision"] != revision:
            raise _Retry(budgets_changed=True)
        seqs: list[int | None] = row["seqs"]
        return seqs

    def _remember(self, org_id: int, ids: list[str], seqs: list[int | None]) -> None:
        if len(self._known_seqs) > MAX_KNOWN_SEQS:
            self._known_seqs.clear()
        for budget_id, seq in zip(ids, seqs, strict=True):
            if seq is not None:
                self._known_seqs[(org_id, budget_id)] = seq

    async def _read(self, principal: Principal, budgets: list[Budget], now: dt.datetime, *,
                    one_at_a_time: bool) -> list[Reading]:
        if one_at_a_time or len(budgets) == 1:
            return [await read(self.engine, principal, b, now, self._settled) for b in budgets]
        return list(await asyncio.gather(*(read(self.engine, principal, b, now, self._settled) for b in budgets)))

    def _degraded(self, org_id: int, usage: Usage, why: str) -> Verdict:
        book = self.books.cached(org_id)
        if book is None:
            return Verdict(True, [], degraded=True, degraded_reason=(
                f"DATABASE_UNAVAILABLE ({why}): no budgets of this organization are known to this server; "
                "allowed (fail open)"))
        states = [unavailable(b) for b in book.index.covering(usage)]
        age = self.books.clock() - book.loaded_at
        return Verdict(all(s.allowed for s in states), states, degraded=True, degraded_reason=(
            f"DATABASE_UNAVAILABLE ({why}): the budgets as this server read them {age:.0f} s ago; "
            "each answered by its on_unavailable policy"))


def _whole_second(at: dt.datetime) -> dt.datetime:
    """Reservations expire on whole seconds (budget_held sums the holds by expiry second)."""
    return at if not at.microsecond else at.replace(microsecond=0) + dt.timedelta(seconds=1)


async def _one(db: Database, item: Item) -> asyncpg.Record:
    [row] = await reserve(db, [item])
    return row


def _request_id(value: str) -> str | None:
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        raise InvalidArgument("request_id", f"at most {MAX_ID_LENGTH} characters, no NUL")
    return value or None

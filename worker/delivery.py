"""Delivery of the alerts' outbox (alert_deliveries) by the worker: webhooks signed per
Standard Webhooks, and email through SMTP when METERING_SMTP_URL is set.

Postgres is the source of truth, not Redis: the loop claims due deliveries with a lease
(claim_deliveries: `for update skip locked`, so workers share them), woken by the
outbox's NOTIFY and polling as a fallback. A delivery whose worker dies mid-way is claimed
again when its lease ends: at-least-once, with the event's id as the stable webhook-id.
A failed attempt is retried after an exponential backoff with jitter (base * 2^(n-1),
capped at an hour, times 0.5..1) until the retry horizon (default 24 hours) has passed,
then `failed`. Every attempt is logged (status, latency, the start of the response).

Safety: the URL is checked again before each attempt (server/alerts/safety.py); TLS is
verified; redirects are not followed; at most 64 KiB of a response is read, within the
timeout; each endpoint has at most `per_endpoint` attempts in flight in a worker (a claim
takes at most that many of one endpoint, and none of an endpoint this worker still sends
to), so one slow receiver cannot hold the others.

Settings (environment): METERING_WEBHOOK_RETRY_HORIZON (seconds, default 86400),
METERING_WEBHOOK_RETRY_BASE (seconds, default 5), METERING_WEBHOOK_TIMEOUT (seconds,
default 10), METERING_WEBHOOK_ALLOW_PRIVATE, METERING_SMTP_URL
(smtp://[user:password@]host[:port], smtps:// for TLS, ?starttls=1), METERING_SMTP_FROM.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.message
import json
import logging
import random
import smtplib
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import asyncpg
import httpx

from metering.waits import wait_set
from server.alerts import safety, signing
from server.core.config import ConfigError
from server.core.convert import Row
from server.storage.db import q

log = logging.getLogger(__name__)
CHANNEL = "metering_alerts"
MAX_BODY = 64 * 1024
EXCERPT = 1024
RETRY_CAP = 3600.0
LEASE_MARGIN = 2.0  # seconds a claimed delivery's lease outlasts its attempt's longest time


@dataclasses.dataclass(frozen=True)
class DeliveryConfig:
    retry_base: float = 5.0
    horizon: float = 86_400.0
    timeout: float = 10.0
    per_endpoint: int = 4
    concurrency: int = 32
    poll: float = 1.0
    private_allowed: bool = False
    smtp_url: str = ""
    smtp_from: str = "metering@localhost"


def _seconds(env: Mapping[str, str], name: str, default: float, most: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= most:
        raise ConfigError(f"{name} must be above 0 and at most {most:g}, got {raw!r}")
    return value


def config_from_env(env: Mapping[str, str]) -> DeliveryConfig:
    smtp_url = env.get("METERING_SMTP_URL", "")
    if smtp_url and urllib.parse.urlsplit(smtp_url).scheme not in ("smtp", "smtps"):
        raise ConfigError("METERING_SMTP_URL must be an smtp:// or smtps:// URL")  # never echo it: a password
    return DeliveryConfig(
        retry_base=_seconds(env, "METERING_WEBHOOK_RETRY_BASE", 5.0, 3600),
        horizon=_seconds(env, "METERING_WEBHOOK_RETRY_HORIZON", 86_400.0, 30 * 86_400),
        timeout=_seconds(env, "METERING_WEBHOOK_TIMEOUT", 10.0, 300),
        private_allowed=safety.allow_private(env), smtp_url=smtp_url,
        smtp_from=env.get("METERING_SMTP_FROM", "metering@localhost"),
    )


@dataclasses.dataclass(frozen=True)
class Outcome:
    status: int | None
    excerpt: str = ""
    error: str = ""
    final: bool = False  # no retry can succeed (the endpoint is gone): failed at once

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def backoff(config: DeliveryConfig, attempts: int) -> float:
    return float(min(RETRY_CAP, config.retry_base * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0))


class Deliverer:
    def __init__(self, pool: asyncpg.Pool, config: DeliveryConfig) -> None:
        self.pool = pool
        self.config = config
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(config.timeout), follow_redirects=False, verify=True,
                                      limits=httpx.Limits(max_connections=config.concurrency))
        self._wake = asyncio.Event()
        self._busy: dict[str, int] = {}  # endpoint_id -> attempts in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._listening: Any = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        await self.drain()
        await self._unlisten()
        await self.http.aclose()

    async def drain(self) -> None:
        """Waits for the attempts in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run_once(self) -> int:
        """Claims what is due (within the limits) and starts its attempts; returns how many."""
        room = self.config.concurrency - len(self._tasks)
        if room <= 0:
            return 0
        lease = dt.timedelta(seconds=self.config.timeout * 2 + LEASE_MARGIN)  # an attempt ends within 2 timeouts
        rows = await self.pool.fetch(q("claim_deliveries"), lease, room, list(self._busy), self.config.per_endpoint)
        for row in rows:
            endpoint = row["endpoint_id"] or ""
            if endpoint:
                self._busy[endpoint] = self._busy.get(endpoint, 0) + 1
            task = asyncio.get_running_loop().create_task(self._attempt(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
                claimed = await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("delivery: cannot claim (%s); retrying", type(exc).__name__)
                await self._unlisten()
                claimed = 0
            if claimed:
                continue
            self._wake.clear()
            await wait_set(self._wake, self.config.poll)

    async def _listen(self) -> None:
        if self._listening is None:
            conn = await self.pool.acquire()
            try:
                await conn.add_listener(CHANNEL, self._notified)
            except BaseException:
                await self.pool.release(conn)
                raise
            self._listening = conn

    async def _unlisten(self) -> None:
        conn, self._listening = self._listening, None
        if conn is not None:
            try:
                await conn.remove_listener(CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
            await self.pool.release(conn)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _attempt(self, row: asyncpg.Record) -> None:
        started, clock = dt.datetime.now(dt.UTC), time.monotonic()
        try:
            if row["channel"] == "email":
                outcome = await self._email(row)
            else:
                outcome = await self._webhook(row)
        except Exception as exc:  # one delivery's surprise must not stop the others
            log.exception("delivery %s failed unexpectedly", row["delivery_id"])
            outcome = Outcome(None, error=f"internal error ({type(exc).__name__})")
        finally:
            endpoint = row["endpoint_id"] or ""
            if endpoint:
                self._busy[endpoint] -= 1
                if not self._busy[endpoint]:
                    del self._busy[endpoint]
        latency = (time.monotonic() - clock) * 1000
        await self._record(row, started, latency, outcome)

    async def _record(self, row: asyncpg.Record, started: dt.datetime, latency: float, outcome: Outcome) -> None:
        now = dt.datetime.now(dt.UTC)
        state, next_at = "delivered", None
        if not outcome.ok:
            horizon = row["retry_from"] + dt.timedelta(seconds=self.config.horizon)
            if now >= horizon or outcome.final:
                state = "failed"
            else:
                state = "pending"
                next_at = min(now + dt.timedelta(seconds=backoff(self.config, row["attempts"])), horizon)
        await self.pool.execute(q("record_attempt"), row["org_id"], row["delivery_id"], row["attempts"], started,
                                outcome.status, latency, outcome.excerpt[:EXCERPT], outcome.error[:EXCERPT],
                                state, next_at)
        if state == "pending":
            self._wake.set()  # a short backoff is due soon: the loop's poll finds it
        log.info("delivery %s attempt %d: %s", row["delivery_id"], row["attempts"], state)

    async def _webhook(self, row: asyncpg.Record) -> Outcome:
        endpoint = await self.pool.fetchrow(q("delivery_endpoint"), row["org_id"], row["endpoint_id"])
        if endpoint is None or endpoint["disabled"]:
            return Outcome(None, error="the endpoint was deleted or disabled", final=True)
        try:
            await safety.check(endpoint["url"], private_allowed=self.config.private_allowed)
        except safety.UnsafeUrl as err:
            return Outcome(None, error=str(err))
        body = json.dumps(row["payload"], separators=(",", ":"))
        secrets = [s for s in (endpoint["secret"], endpoint["previous_secret"]) if s]
        headers = signing.headers(row["event_id"], body, secrets, dt.datetime.now(dt.UTC))
        try:
            async with asyncio.timeout(self.config.timeout):
                async with self.http.stream("POST", endpoint["url"], content=body.encode(), headers=headers) as reply:
                    read = bytearray()
                    async for chunk in reply.aiter_bytes():
                        read += chunk
                        if len(read) >= MAX_BODY:
                            break
                    return Outcome(reply.status_code, bytes(read[:EXCERPT]).decode("utf-8", "replace"))
        except TimeoutError:
            return Outcome(None, error=f"no answer within {self.config.timeout:g} s")
        except httpx.HTTPError as err:
            return Outcome(None, error=f"{type(err).__name__}: {err}"[:EXCERPT])

    async def _email(self, row: asyncpg.Record) -> Outcome:
        if not self.config.smtp_url:
            return Outcome(None, error="METERING_SMTP_URL is not set")
        message = email_message(row, self.config.smtp_from)
        try:
            async with asyncio.timeout(self.config.timeout * 2):
                await asyncio.to_thread(_send, self.config.smtp_url, message, self.config.timeout)
        except (OSError, smtplib.SMTPException, TimeoutError) as err:
            return Outcome(None, error=f"SMTP: {type(err).__name__}: {err}"[:EXCERPT])
        return Outcome(250, "accepted")


def email_message(row: Row, sender: str) -> email.message.EmailMessage:
    data = row["payload"]["data"]
    prefix = (row["subject_prefix"] or "").strip()
    currency = data.get("currency", "").upper()
    subject = f"Spend alert: {data['used']} {currency} of {data['threshold_amount']} {currency} reached"
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(row["recipients"])
    message["Subject"] = f"{prefix} {subject}" if prefix else subject
    message["Message-ID"] = f"<{row['event_id']}@metering>"  # the same on every attempt
    scope = ", ".join(f"{f['field']} = {', '.join(f['values'])}" for f in data["scope"]) or "the organization"
    message.set_content(
        f"The spend of {scope} reached {data['used']} {currency} in the period starting {data['period_start']}, "
        f"crossing the alert's threshold of {data['threshold_amount']} {currency}.\n\n"
        f"Budget: {data['budget_id']} ({data['budget_name']})\nEvent: {row['event_id']}\n")
    return message


def _send(url: str, message: email.message.EmailMessage, timeout: float) -> None:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "localhost"
    options = urllib.parse.parse_qs(parts.query)
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(host, parts.port or 465, timeout=timeout)
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=timeout)
    with client:
        if options.get("starttls", ["0"])[0] == "1":
            client.starttls()
        if parts.username:
            client.login(urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        client.send_message(message)

"""Nothing lost, nothing doubled: server restarts, process exit with a full buffer, outages."""

from __future__ import annotations

import asyncio
import decimal
import os
import sys
import time
from pathlib import Path

import grpc

from metering_client import MeteringClient, Outcome, UsageTracker
from metering_client.journal import read_all
from tests.metering_client.conftest import event_counts
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[2]


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_server_restart_mid_stream_counts_each_event_once(own_server, new_org, db, tmp_path):
    org = await new_org()
    port = free_port()
    first = await own_server(port)
    n = 10_000
    client = MeteringClient(f"127.0.0.1:{port}", org.admin_key, batch_size=250, max_delay=0.02,
                            journal_path=tmp_path / "j.jsonl", retry_budget=30)

    def produce() -> list:
        receipts = []
        for i in range(n):
            receipts.append(client.record(request_id=f"r-{i}", kind="completions", model="m", input_tokens=1,
                                          cost="0.001"))
            if i % 100 == 0:
                time.sleep(0.02)  # spread the stream over the restart
        return receipts

    producing = asyncio.create_task(asyncio.to_thread(produce))
    await wait_until(lambda: client.delivery_status().recorded >= 2_000)
    await first.stop(grace=0)  # in-flight batches are cut off, committed or not
    assert client.delivery_status().recorded < n // 2
    await asyncio.sleep(0.3)
    await own_server(port)
    receipts = await producing
    await asyncio.to_thread(client.close)

    results = [r.result() for r in receipts]
    assert {r.outcome for r in results} <= {Outcome.RECORDED, Outcome.DUPLICATE}
    status = client.delivery_status()
    assert status.journaled == 0 and status.recorded + status.duplicates == n
    assert await event_counts(db, org.organization_id) == (n, n)
    total = await db.fetchval("select sum(cost) from events e join organizations o using (org_id) where o.id = $1",
                              org.organization_id)
    assert total == decimal.Decimal("10.000")


CHILD_HEAD = """
import sys
from metering_client import UsageTracker, AsyncUsageTracker
target, key, journal, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
"""

SYNC_BODY = """
tracker = UsageTracker(target=target, api_key=key, journal_path=journal, max_delay=3600, batch_size=10_000)
for i in range(n):
    tracker.log_request(f"exit-{i}", "gpt-4", "openai", "app", "", "{}", "", "{}", "{}", "", 3, 4, 0.0001, 0.0002,
                        "success")
assert tracker.delivery_status().recorded == 0  # all still buffered
"""

ASYNC_BODY = """
import asyncio
async def main():
    tracker = AsyncUsageTracker(target=target, api_key=key, journal_path=journal, max_delay=3600, batch_size=10_000)
    for i in range(n):
        await tracker.log_request(f"exit-{i}", "gpt-4", "openai", "app", "", "{}", "", "{}", "{}", "", 3, 4,
                                  0.0001, 0.0002, "success")
asyncio.run(main())  # the loop ends with the client open and everything buffered
"""


async def run_child(body: str, target: str, key: str, journal: Path, n: int) -> str:
    """Run `body` in a fresh interpreter that exits without closing its client."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD_HEAD + body, target, key, str(journal), str(n),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode() + err.decode()


async def test_buffered_events_are_delivered_when_the_process_exits(target, new_org, db, tmp_path):
    org = await new_org()
    journal = tmp_path / "exit.jsonl"
    output = await run_child(SYNC_BODY, target, org.admin_key, journal, 2_000)
    assert "journaled" not in output  # sent by the exit hook itself
    assert await event_counts(db, org.organization_id) == (2_000, 2_000)
    assert read_all(journal) == []


async def test_async_client_left_open_is_delivered_at_exit(target, new_org, db, tmp_path):
    org = await new_org()
    journal = tmp_path / "aexit.jsonl"
    output = await run_child(ASYNC_BODY, target, org.admin_key, journal, 1_000)
    assert "journaled" in output  # the loop ended first: the journal kept them, the exit hook sent them
    assert await event_counts(db, org.organization_id) == (1_000, 1_000)
    assert read_all(journal) == []


async def test_outage_journals_then_replays_on_reconnect(own_server, new_org, db, tmp_path):
    org = await new_org()
    port = free_port()
    srv = await own_server(port)
    journal = tmp_path / "outage.jsonl"
    client = MeteringClient(f"127.0.0.1:{port}", org.admin_key, journal_path=journal, retry_budget=0.5,
                            attempt_timeout=0.5, max_delay=0.01)
    await srv.stop(grace=0)

    def log_during_outage() -> list:
        receipts = [client.record(request_id=f"o-{i}", kind="completions", input_tokens=i, cost="0.1")
                    for i in range(1_000)]
        client.flush()  # returns: nothing is lost, it is journaled
        return receipts

    receipts = await asyncio.to_thread(log_during_outage)
    assert {r.result().outcome for r in receipts} == {Outcome.JOURNALED}
    lines = read_all(journal)
    assert [line["event"]["request_id"] for line in lines] == [f"o-{i}" for i in range(1_000)]
    status = client.delivery_status()
    assert (status.connected, status.journaled) == (False, 1_000)
    stamped = {line["event"]["request_id"]: line["event"]["timestamp"] for line in lines}

    await own_server(port)
    await asyncio.to_thread(grpc.channel_ready_future(client.channel).result, 10)
    await asyncio.to_thread(client.flush)  # a flush probes at once; the journal goes first
    await asyncio.to_thread(client.close)
    assert client.delivery_status().replayed == 1_000
    assert read_all(journal) == []
    assert await event_counts(db, org.organization_id) == (1_000, 1_000)
    row = await db.fetchrow(
        "select sum(input_tokens) as tokens, sum(cost) as cost, min(ts) as first from events e"
        " join organizations o using (org_id) where o.id = $1", org.organization_id,
    )
    assert (row["tokens"], row["cost"]) == (sum(range(1_000)), decimal.Decimal("100.0"))
    # replayed with the original event time, not the replay time
    assert row["first"].isoformat().replace("+00:00", "Z").startswith(stamped["o-0"][:19])


async def test_journal_left_by_a_dead_process_is_replayed_by_the_next_one(own_server, new_org, db, tmp_path):
    org = await new_org()
    port = free_port()
    journal = tmp_path / "next.jsonl"

    def first_run() -> None:  # server down for this whole run
        tracker = UsageTracker(target=f"127.0.0.1:{port}", api_key=org.admin_key, journal_path=journal,
                               retry_budget=0.3, attempt_timeout=0.3, exit_timeout=0.5)
        for i in range(500):
            tracker.log_request(f"n-{i}", "gpt-4", "openai", "app", "", "", "", "", "", "", 10, 1, 0.25, 0.5,
                                "success")
        tracker.close()  # cannot deliver: journals, does not raise (nothing was refused or rejected)

    await asyncio.to_thread(first_run)
    assert len(read_all(journal)) == 500
    await own_server(port)

    def second_run() -> dict:
        with UsageTracker(target=f"127.0.0.1:{port}", api_key=org.admin_key, journal_path=journal) as tracker:
            tracker.log_request("n-new", "gpt-4", "openai", "app", "", "", "", "", "", "", 10, 1, 0.25, 0.5,
                                "success")
            tracker.log_request("n-0", "gpt-4", "openai", "app", "", "", "", "", "", "", 10, 1, 0.25, 0.5,
                                "success")  # already journaled by the first run: a duplicate
            return tracker.get_usage_stats()

    stats = await asyncio.to_thread(second_run)
    assert read_all(journal) == []
    assert await event_counts(db, org.organization_id) == (501, 501)
    assert (stats["total_requests"], stats["total_input_tokens"]) == (501, 5010)
    assert stats["total_cost_decimal"] == "375.75"

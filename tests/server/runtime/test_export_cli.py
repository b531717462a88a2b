"""`metering export usage|events`: the file holds what the export RPCs stream (CSV the csv module
reads, NDJSON by the file's suffix), under the key's scope, and an interrupted export resumed with
--resume holds every row exactly once, whatever was written after its last checkpoint."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator

import grpc
import pytest

from metering.v1 import exports_pb2, records_pb2
from server.runtime import cli, export_cli
from tests.support.export_data import Tenant, tenant

pytestmark = pytest.mark.usefixtures("saved_logging")  # `metering`'s main configures logging in-process

ROOT = pathlib.Path(__file__).resolve().parents[3]
RANGE = ["--start", "2024-03-08T21:00:00Z", "--end", "2024-03-12"]


@pytest.fixture(scope="module")
async def usage(stubs) -> Tenant:
    return await tenant(stubs)


async def metering(*args: str) -> int:
    """The command in this process (its own event loop, in a thread: the test's loop serves the server)."""
    return await asyncio.to_thread(cli.main, ["export", *args])


def target(server) -> list[str]:
    return ["--target", f"127.0.0.1:{server.port}"]


def read_csv(path: pathlib.Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


async def test_usage_and_events_to_csv_and_ndjson(server, stubs, usage, tmp_path, capsys):
    out = tmp_path / "usage.csv"
    assert await metering("usage", *RANGE, "--width", "1d", "--group-by", "model", "--filter", "model=gpt-4o",
                          "--filter", "model=gpt-4o-mini", "--out", str(out), "--key", usage.admin_key,
                          *target(server)) == 0
    rows = read_csv(out)
    assert {r["model"] for r in rows} == {"gpt-4o", "gpt-4o-mini", ""}  # "": the empty first bucket
    assert sum(int(r["events"]) for r in rows) == usage.events * 2 // 3
    assert f"{len(rows)} rows written to {out}" in capsys.readouterr().out
    assert not out.with_name("usage.csv.cursor").exists()  # finished: no checkpoint left

    out = tmp_path / "events.ndjson"
    assert await metering("events", "--payload", "--page-size", "7", "--out", str(out), "--key", usage.admin_key,
                          *target(server)) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    listed = await stubs.records.ListEvents(records_pb2.ListEventsRequest(page_size=1000, include_payload=True),
                                            metadata=usage.admin)
    assert [line["event_id"] for line in lines] == [e.event_id for e in listed.events]
    assert [line["request_raw"] for line in lines] == [e.request_raw for e in listed.events]


async def test_the_command_with_a_member_key_from_the_environment(server, usage, tmp_path):
    out = tmp_path / "mine.csv"
    env = {**os.environ, "METERING_API_KEY": usage.member_key, "METERING_TARGET": f"127.0.0.1:{server.port}"}
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "server.runtime.cli", "export", "events", "--out", str(out), "--quiet"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = read_csv(out)
    assert {r["user_id"] for r in rows} == {usage.member_id} and len(rows) == usage.events // 3


class Interrupted(Exception):
    pass


async def cut_after(stream: AsyncIterator[export_cli.Chunk], chunks: int) -> AsyncIterator[export_cli.Chunk]:
    """The stream, lost after `chunks` chunks (as a dropped connection or Ctrl-C would end it)."""
    count = 0
    async for chunk in stream:
        yield chunk
        count += 1
        if count == chunks:
            raise Interrupted


@pytest.mark.parametrize("kind", ["events", "usage"])
async def test_an_interrupted_export_resumes_with_every_row_once(server, usage, tmp_path, kind):
    options = (["events", "--page-size", "7"] if kind == "events"
               else ["usage", *RANGE, "--width", "1h", "--group-by", "model", "--page-size", "5"])
    whole = tmp_path / "whole.csv"
    auth = ["--key", usage.admin_key, *target(server), "--quiet"]
    assert await metering(*options, "--out", str(whole), *auth) == 0
    out = tmp_path / "part.csv"
    args = cli._parser().parse_args(["export", *options, "--out", str(out), *auth])
    state = export_cli.prepare(args)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stream = export_cli.open_stream(channel, (("authorization", f"Bearer {usage.admin_key}"),), state)
        with pytest.raises(Interrupted):
            await export_cli.write(cut_after(stream, 3), state, out, export_cli.Tracker(state, quiet=True))
    checkpoint = json.loads(out.with_name("part.csv.cursor").read_text())
    assert checkpoint["cursor"] and int(checkpoint["bytes"]) == out.stat().st_size
    with open(out, "a") as f:  # rows written after the last checkpoint (a crash before it was saved)
        f.write(out.read_text().splitlines()[-1] + "\r\n")
    assert await metering(*options, "--out", str(out), *auth, "--resume") == 0
    assert out.read_bytes() == whole.read_bytes()
    assert not out.with_name("part.csv.cursor").exists()
    if kind == "events":
        ids = [r["event_id"] for r in read_csv(out)]
        assert len(ids) == len(set(ids)) == usage.events


async def test_resume_refuses_what_it_cannot_continue(server, usage, tmp_path, capsys):
    out = tmp_path / "e.csv"
    auth = ["--key", usage.admin_key, *target(server), "--quiet"]
    assert await metering("events", "--out", str(out), *auth, "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    state = exports_pb2.ExportCheckpoint(kind="events", format="csv", events=records_pb2.ListEventsRequest(
        models=["gpt-4o"]), cursor="", bytes=0)
    export_cli.Checkpoint(out.with_name("e.csv.cursor")).save(state)
    assert await metering("events", "--out", str(out), *auth) == 2  # a fresh start would lose the old one
    assert "--resume" in capsys.readouterr().err
    assert await metering("events", "--model", "gpt-4o-mini", "--out", str(out), *auth, "--resume") == 2
    assert "other options" in capsys.readouterr().err
    assert await metering("events", "--model", "gpt-4o", "--out", str(out), *auth, "--resume") == 0
    assert {r["model"] for r in read_csv(out)} == {"gpt-4o"}


async def test_errors_of_the_service_are_reported(server, usage, tmp_path, capsys):
    out = tmp_path / "u.csv"
    code = await metering("usage", *RANGE, "--width", "2d", "--out", str(out), "--key", usage.admin_key,
                          *target(server), "--quiet")
    assert code == 1 and "INVALID_ARGUMENT: width" in capsys.readouterr().err
    code = await metering("events", "--out", str(tmp_path / "missing" / "e.csv"), "--key", usage.admin_key,
                          *target(server), "--quiet")
    assert code == 1 and "No such file or directory" in capsys.readouterr().err

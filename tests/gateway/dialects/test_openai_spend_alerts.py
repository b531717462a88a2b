"""OpenAI's spend alerts through the official `openai` SDK, unchanged, against the gateway on
loopback: create, retrieve, update, list (after/before/limit/order), delete, for the
organization and a project; the email of a crossed alert reaches an SMTP server on loopback
(aiosmtpd) through the worker's delivery; who may call them; bad input in OpenAI's shape."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from aiosmtpd.controller import Controller

from metering.v1 import admin_pb2, event_pb2, ingest_pb2
from server.alerts.detect import Detector
from server.runtime.app import MeteringServer
from server.storage.db import create_pool
from tests.conftest import MASTER
from worker.delivery import Deliverer, DeliveryConfig


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def pool(database_url: str, server: MeteringServer) -> AsyncIterator[Any]:
    made = await create_pool(database_url, min_size=1, max_size=6)
    yield made
    await made.close()


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(admin_api_key=key, base_url=f"{url}/v1", max_retries=0)


async def run(method: Any, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(method, *args, **kwargs)


CHANNEL = {"type": "email", "recipients": ["ops@example.com", "cfo@example.com"], "subject_prefix": "[web]"}


async def test_project_alert_emailed_once_crossed(live_gateway, new_tenant, stubs, pool, smtp):
    inbox, port = smtp
    t = await new_tenant()
    project = await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(
        organization=t.org.organization_id, name="web"), metadata=MASTER)
    with sdk(live_gateway, t.org.admin_key) as client:
        alerts = client.admin.organization.projects.spend_alerts
        made = await run(alerts.create, project.project_id, currency="USD", interval="month",
                         notification_channel=CHANNEL, threshold_amount=500)
        assert (made.object, made.threshold_amount, made.notification_channel.recipients) == (
            "project.spend_alert", 500, CHANNEL["recipients"])
        assert (await run(alerts.retrieve, made.id, project_id=project.project_id)).id == made.id
    await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=event_pb2.UsageEvent(
        kind="completions", model="m", cost="6", project_id=project.project_id)), metadata=t.org.auth)
    org_id = await pool.fetchval("select org_id from organizations where id = $1", t.org.organization_id)
    assert await Detector(pool).organization(org_id) == 1
    assert await Detector(pool).organization(org_id) == 0
    deliverer = Deliverer(pool, DeliveryConfig(poll=0.05, smtp_url=f"smtp://127.0.0.1:{port}"))
    deliverer.start()
    try:
        for _ in range(500):
            if inbox.messages:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # nothing more comes
    finally:
        await deliverer.close()
    [mail] = inbox.messages
    assert mail["Subject"].startswith("[web] Spend alert: 6 USD of 5 USD")
    assert mail["To"] == "ops@example.com, cfo@example.com"


async def test_organization_alerts_crud_and_pages(live_gateway, new_tenant):
    t = await new_tenant()
    with sdk(live_gateway, t.org.admin_key) as client:
        alerts = client.admin.organization.spend_alerts
        made = [await run(alerts.create, currency="USD", interval="month", notification_channel=CHANNEL,
                          threshold_amount=100 * (i + 1)) for i in range(5)]
        ids = [a.id for a in made]
        first = await run(alerts.list, limit=2)
        assert [a.id for a in first.data] == ids[:2] and first.has_more
        assert [a.id for a in await run(alerts.list)] == ids  # the SDK follows the pages (after=last_id)
        assert [a.id for a in (await run(alerts.list, limit=2, order="desc")).data] == ids[::-1][:2]
        assert [a.id for a in (await run(alerts.list, before=ids[3], limit=2)).data] == ids[1:3]
        updated = await run(alerts.update, ids[0], currency="USD", interval="month",
                            notification_channel={"type": "email", "recipients": ["a@example.com"]},
                            threshold_amount=777)
        assert (updated.threshold_amount, updated.notification_channel.recipients) == (777, ["a@example.com"])
        deleted = await run(alerts.delete, ids[0])
        assert (deleted.id, deleted.deleted, deleted.object) == (ids[0], True, "organization.spend_alert.deleted")
        with pytest.raises(openai.NotFoundError):
            await run(alerts.retrieve, ids[0])
        with pytest.raises(openai.BadRequestError) as bad:
            await run(alerts.create, currency="USD", interval="month", threshold_amount=0,
                      notification_channel=CHANNEL)
        assert bad.value.body["param"] == "threshold_amount"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError) as bad:
            await run(alerts.create, currency="USD", interval="month", threshold_amount=5,
                      notification_channel={"type": "email", "recipients": ["not an address"]})
        assert bad.value.body["param"] == "recipients"  # type: ignore[index]
    with sdk(live_gateway, t.member.key) as member, pytest.raises(openai.PermissionDeniedError):
        await run(member.admin.organization.spend_alerts.list)

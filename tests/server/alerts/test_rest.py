"""AlertService through the gateway's native REST routes (from alerts.proto's google.api.http
options): webhook endpoints' create (secret shown once), list, update, rotate and delete, the
delivery log; an admin's only; bad input a 400 naming the field."""

from __future__ import annotations

import pytest


async def test_webhook_endpoints_over_rest(http, new_team, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("METERING_WEBHOOK_ALLOW_PRIVATE", "1")
    team = await new_team()
    admin = {"Authorization": f"Bearer {team.org.admin_key}"}
    made = await http.post("/v1/webhook_endpoints", headers=admin,
                           json={"url": "http://127.0.0.1:9/hook", "event_types": ["usage.unpriced"]})
    assert made.status_code == 200, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["event_types"] == ["usage.unpriced"]
    listed = (await http.get("/v1/webhook_endpoints", headers=admin)).json()
    assert [e["endpoint_id"] for e in listed["endpoints"]] == [endpoint["endpoint_id"]]
    assert listed["endpoints"][0]["secret"] == ""
    path = f"/v1/webhook_endpoints/{endpoint['endpoint_id']}"
    patched = await http.patch(path, headers=admin, json={"description": "ops", "disabled": True})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["description"], patched.json()["disabled"], patched.json()["url"]) == (
        "ops", True, "http://127.0.0.1:9/hook")
    rotated = (await http.post(f"{path}:rotate_secret", headers=admin, json={"overlap": "60s"})).json()
    assert rotated["secret"] not in ("", endpoint["secret"]) and rotated["previous_secret_expire_time"]
    log = await http.get("/v1/deliveries", headers=admin, params={"endpoint_id": endpoint["endpoint_id"]})
    assert log.status_code == 200 and log.json()["deliveries"] == []
    bad = await http.post("/v1/webhook_endpoints", headers=admin, json={"url": "gopher://x"})
    assert bad.status_code == 400 and "url" in bad.json()["message"]
    member = {"Authorization": f"Bearer {team.member[0][1].removeprefix('Bearer ')}"}
    assert (await http.get("/v1/webhook_endpoints", headers=member)).status_code == 403
    assert (await http.delete(path, headers=admin)).status_code == 200
    assert (await http.get(path, headers=admin)).status_code == 404

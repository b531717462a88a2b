"""Native REST routes (from the protos' google.api.http options) over a real server."""

import json

from tests.gateway.conftest import PASSWORD, auth


def event(**fields):
    return {"kind": "completions", "model": "gpt-4o", **fields}


async def test_record_then_get_round_trip(http, new_tenant):
    t = await new_tenant()
    body = event(request_id="r-1", input_tokens=12, output_tokens=3, labels={"task_id": "t1"},
                 counters={"inference": 7}, cost="0.0043")
    created = await http.post("/v1/events", json=body, headers=t.admin.headers)
    assert created.status_code == 200, created.text
    assert created.json()["outcome"] == "OUTCOME_RECORDED"
    event_id = created.json()["event_id"]
    received_at = created.json()["received_at"]

    got = await http.get(f"/v1/events/{event_id}", headers=t.admin.headers)
    assert got.status_code == 200
    data = got.json()
    assert data["event_id"] == event_id and data["request_id"] == "r-1"
    assert data["input_tokens"] == 12 and data["output_tokens"] == 3  # int64 as JSON numbers
    assert data["counters"] == {"inference": 7} and data["labels"] == {"task_id": "t1"}
    assert data["cost"] == "0.0043"  # money stays an exact decimal string
    assert data["user_id"] == t.admin.user_id  # defaulted to the caller
    assert data["images"] == 0 and data["project_id"] == ""  # every field present
    assert '"input_tokens":12' in got.text
    assert data["received_at"].endswith("Z")
    assert data["received_at"] == received_at  # the acknowledgement says when it was stored

    again = await http.post("/v1/events", json=body, headers=t.admin.headers)
    assert again.json() == {"outcome": "OUTCOME_DUPLICATE", "event_id": event_id, "request_id": "r-1",
                            "received_at": None}  # a duplicate: read the original for its received_at


async def test_batch_has_a_result_per_item(http, new_tenant):
    t = await new_tenant()
    reply = await http.post("/v1/events:batchRecord", headers=t.admin.headers, json={"events": [
        event(input_tokens=1), event(input_tokens=-1), {"kind": "nonsense"},
    ]})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert (data["recorded"], data["duplicates"], data["rejected"]) == (1, 0, 2)
    outcomes = [r["outcome"] for r in data["results"]]
    assert outcomes == ["OUTCOME_RECORDED", "OUTCOME_REJECTED", "OUTCOME_REJECTED"]
    assert data["results"][1]["field"] == "input_tokens"
    assert data["results"][2]["field"] == "kind"


async def test_invalid_input_is_400_naming_the_field(http, new_tenant):
    t = await new_tenant()
    reply = await http.post("/v1/events", json=event(input_tokens=-5), headers=t.admin.headers)
    assert reply.status_code == 400
    body = reply.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == 3 and "input_tokens" in body["message"]
    bad = [d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest")]
    assert bad[0]["field_violations"][0]["field"] == "input_tokens"


async def test_gateway_side_errors_have_the_same_shape(http, new_tenant):
    t = await new_tenant()
    unknown = await http.post("/v1/events", json=event(input_tokns=5), headers=t.admin.headers)
    assert unknown.status_code == 400 and unknown.json()["code"] == 3
    assert "input_tokns" in unknown.json()["message"]

    not_json = await http.post("/v1/events", content=b"{nope", headers=t.admin.headers)
    assert not_json.status_code == 400 and not_json.json()["code"] == 3
    for raw in (b'{"kind": "completions", "input_tokens": NaN}', b"[" * 5000 + b"]" * 5000):  # not JSON either
        refused = await http.post("/v1/events", content=raw, headers=t.admin.headers)
        assert refused.status_code == 400 and "not valid JSON" in refused.json()["message"]

    bad_query = await http.get("/v1/events", params={"page_size": "lots"}, headers=t.admin.headers)
    assert bad_query.status_code == 400
    assert bad_query.json()["details"][0]["field_violations"][0]["field"] == "page_size"


async def test_credentials_are_required(http):
    reply = await http.get("/v1/events")
    assert reply.status_code == 401
    assert reply.json()["code"] == 16
    wrong = await http.get("/v1/events", headers=auth("mk_not_a_key"))
    assert wrong.status_code == 401


async def test_list_with_query_parameters_and_pages(http, new_tenant):
    t = await new_tenant()
    batch = [event(model=m, input_tokens=i) for i, m in enumerate(["a", "b", "a", "c", "a"])]
    await http.post("/v1/events:batchRecord", json={"events": batch}, headers=t.admin.headers)

    models = await http.get("/v1/events?models=a&models=c", headers=t.admin.headers)
    assert sorted(e["model"] for e in models.json()["events"]) == ["a", "a", "a", "c"]

    seen, token = [], ""
    while True:
        page = await http.get("/v1/events", params={"page_size": 2, "page_token": token}, headers=t.admin.headers)
        assert page.status_code == 200, page.text
        seen += [e["event_id"] for e in page.json()["events"]]
        token = page.json()["next_page_token"]
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5

    future = await http.get("/v1/events", params={"start_time": "2999-01-01T00:00:00Z"}, headers=t.admin.headers)
    assert future.json() == {"events": [], "next_page_token": ""}


async def test_patch_derives_the_update_mask_and_void_is_a_custom_verb(http, new_tenant):
    t = await new_tenant()
    created = await http.post("/v1/events", json=event(input_tokens=10, output_tokens=4), headers=t.admin.headers)
    event_id = created.json()["event_id"]

    patched = await http.patch(f"/v1/events/{event_id}", json={"input_tokens": 0}, headers=t.admin.headers)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["input_tokens"], patched.json()["output_tokens"]) == (0, 4)

    explicit = await http.patch(f"/v1/events/{event_id}?update_mask=output_tokens", json={"output_tokens": 1,
                                "input_tokens": 99}, headers=t.admin.headers)
    assert (explicit.json()["input_tokens"], explicit.json()["output_tokens"]) == (0, 1)

    as_member = await http.post(f"/v1/events/{event_id}:void", headers=t.member.headers)
    assert as_member.status_code == 403 and as_member.json()["code"] == 7

    voided = await http.post(f"/v1/events/{event_id}:void", json={"reason": "test"}, headers=t.admin.headers)
    assert voided.status_code == 200 and voided.json()["active"] is False
    listed = await http.get("/v1/events", headers=t.admin.headers)
    assert event_id not in [e["event_id"] for e in listed.json()["events"]]
    with_voided = await http.get("/v1/events?include_voided=true", headers=t.admin.headers)
    assert event_id in [e["event_id"] for e in with_voided.json()["events"]]


async def test_admin_routes_and_login(http, new_tenant):
    t = await new_tenant()
    me = await http.get("/v1/whoami", headers=t.member.headers)
    assert me.json()["role"] == "ROLE_MEMBER" and me.json()["user_id"] == t.member.user_id

    users = await http.get("/v1/users", headers=t.org_admin)
    assert {t.admin.user_id, t.member.user_id} <= {u["user_id"] for u in users.json()["users"]}
    assert (await http.get("/v1/users", headers=t.member.headers)).status_code == 403

    made = await http.post("/v1/api_keys", json={"user_id": t.member.user_id, "name": "rest"}, headers=t.org_admin)
    assert made.status_code == 200, made.text
    key = made.json()
    assert key["api_key"]["revoke_time"] is None and key["api_key"]["revoked"] is False
    revoked = await http.post(f"/v1/api_keys/{key['api_key']['api_key_id']}:revoke", headers=t.org_admin)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    assert revoked.json()["revoke_time"].endswith("Z")

    login = await http.post("/v1/login", json={"username": t.member.username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    assert (await http.get("/v1/whoami", headers=auth(token))).json()["user_id"] == t.member.user_id
    bad = await http.post("/v1/login", json={"username": t.member.username, "password": "wrong password"})
    assert bad.status_code == 401


async def test_routing_errors(http, new_tenant):
    t = await new_tenant()
    missing = await http.get("/v1/no/such/route", headers=t.admin.headers)
    assert missing.status_code == 404 and missing.json() == {"code": 5, "message": "Not Found", "details": []}
    wrong_method = await http.delete("/v1/events", headers=t.admin.headers)
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == 12
    assert wrong_method.headers["allow"] == "GET, POST"
    unknown_event = await http.get("/v1/events/00000000-0000-0000-0000-000000000000", headers=t.admin.headers)
    assert unknown_event.status_code == 404 and unknown_event.json()["code"] == 5


async def test_master_key_acts_in_another_organization(http, new_tenant):
    from tests.conftest import MASTER_KEY

    t = await new_tenant()
    headers = {**auth(MASTER_KEY), "X-Metering-Organization": t.org.organization_id}
    created = await http.post("/v1/events", json=event(input_tokens=1), headers=headers)
    assert created.status_code == 200
    got = await http.get(f"/v1/events/{created.json()['event_id']}", headers=t.admin.headers)
    assert got.status_code == 200 and json.loads(got.text)["organization_id"] == t.org.organization_id

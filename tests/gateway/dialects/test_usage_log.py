"""The usage-log dialect (seed 002): the seed's curl examples as written, plus scoping and paging."""

import decimal
import json
import re
import shlex
import uuid

import pytest

from tests.gateway.conftest import PASSWORD, auth

SEED_HOST = "https://api.yourdomain.com"
RECORD_FIELDS = {"usage_id", "user_id", "api_name", "endpoint", "units_used", "cost_usd", "api_key_used",
                 "status_active", "created_at"}

# Verbatim from seeds/002.
CURL_POST = """curl -X POST https://api.yourdomain.com/usage \\
  -H "Authorization: Bearer <token>" \\
  -H "Content-Type: application/json" \\
  -d '{
    "api_name": "llm_query",
    "endpoint": "/chat",
    "units_used": 346,
    "cost_usd": 0.0043,
    "api_key_used": "pk_live_abc123"
  }'"""
CURL_LIST = """curl "https://api.yourdomain.com/usage?skip=0&limit=50" \\
  -H "Authorization: Bearer <token>\""""
CURL_BY_USER = """curl https://api.yourdomain.com/usage/user/uuid123 \\
  -H "Authorization: Bearer <admin_or_user_token>\""""
CURL_GET = """curl https://api.yourdomain.com/usage/usage-uuid \\
  -H "Authorization: Bearer <token>\""""
CURL_PUT = """curl -X PUT https://api.yourdomain.com/usage/usage-uuid \\
  -H "Authorization: Bearer <admin_token>" \\
  -H "Content-Type: application/json" \\
  -d '{
    "units_used": 0,
    "cost_usd": 0.00
  }'"""
CURL_DELETE = """curl -X DELETE https://api.yourdomain.com/usage/usage-uuid \\
  -H "Authorization: Bearer <admin_token>\""""


async def curl(http, command, **substitutions):
    """Runs a curl command line against the gateway: only the host and the placeholders change."""
    for placeholder, value in substitutions.items():
        command = command.replace(placeholder, value)
    args = shlex.split(command.replace("\\\n", " "))
    assert args.pop(0) == "curl"
    method, headers, data, url = "GET", {}, None, None
    while args:
        arg = args.pop(0)
        if arg == "-X":
            method = args.pop(0)
        elif arg == "-H":
            name, _, value = args.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = args.pop(0)
            method = "POST" if method == "GET" else method
        else:
            url = arg
    assert url is not None and url.startswith(SEED_HOST)
    return await http.request(method, url[len(SEED_HOST):], headers=headers, content=data)


async def test_the_seed_examples_as_written(http, new_tenant):
    t = await new_tenant()
    login = await http.post("/v1/login", json={"username": t.member.username, "password": PASSWORD})
    user_token = login.json()["token"]

    created = await curl(http, CURL_POST, **{"<token>": user_token})
    assert created.status_code == 200, created.text
    record = created.json()
    assert set(record) == RECORD_FIELDS
    assert record["user_id"] == t.member.user_id  # from the token: the user's stable uuid, not its username
    assert str(uuid.UUID(record["user_id"])) == record["user_id"] != t.member.username
    assert (record["api_name"], record["endpoint"], record["units_used"]) == ("llm_query", "/chat", 346)
    assert '"cost_usd":0.0043' in created.text  # a JSON number, exactly the given value
    assert record["api_key_used"] == "pk_live_abc123"
    assert record["status_active"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["created_at"])  # as "2025-07-04T12:00:00Z"
    usage_id = record["usage_id"]

    listed = await curl(http, CURL_LIST, **{"<token>": user_token})
    assert listed.status_code == 200 and listed.json() == [record]

    by_user = await curl(http, CURL_BY_USER, uuid123=t.member.user_id, **{"<admin_or_user_token>": user_token})
    assert by_user.status_code == 200 and by_user.json() == [record]
    by_admin = await curl(http, CURL_BY_USER, uuid123=t.member.user_id, **{"<admin_or_user_token>": t.admin.key})
    assert by_admin.json() == [record]

    got = await curl(http, CURL_GET, **{"usage-uuid": usage_id, "<token>": user_token})
    assert got.status_code == 200 and got.json() == record

    refunded = await curl(http, CURL_PUT, **{"usage-uuid": usage_id, "<admin_token>": t.admin.key})
    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["units_used"] == 0 and refunded.json()["cost_usd"] == 0
    assert '"cost_usd":0.0' in refunded.text
    assert {k: v for k, v in refunded.json().items() if k not in ("units_used", "cost_usd")} == \
        {k: v for k, v in record.items() if k not in ("units_used", "cost_usd")}
    assert (await curl(http, CURL_GET, **{"usage-uuid": usage_id, "<token>": user_token})).json() == refunded.json()

    deleted = await curl(http, CURL_DELETE, **{"usage-uuid": usage_id, "<admin_token>": t.admin.key})
    assert deleted.status_code == 200
    assert deleted.json()["usage_id"] == usage_id and deleted.json()["status_active"] is False
    # Deleted: gone from this dialect (reads, adjustments, a second delete, every list) ...
    gone = {"detail": "Usage record not found"}
    for command, token in ((CURL_GET, user_token), (CURL_GET, t.admin.key), (CURL_PUT, t.admin.key),
                           (CURL_DELETE, t.admin.key)):
        after = await curl(http, command, **{"usage-uuid": usage_id, "<token>": token, "<admin_token>": token})
        assert (after.status_code, after.json()) == (404, gone), command
    assert (await curl(http, CURL_LIST, **{"<token>": user_token})).json() == []
    assert (await curl(http, CURL_LIST, **{"<token>": t.admin.key})).json() == []
    for token in (user_token, t.admin.key):
        by_user = await curl(http, CURL_BY_USER, uuid123=t.member.user_id, **{"<admin_or_user_token>": token})
        assert by_user.json() == []
    # ... and still auditable through the native API.
    audit = await http.get("/v1/events?include_voided=true", headers=t.admin.headers)
    assert [(e["event_id"], e["active"], e["user_id"]) for e in audit.json()["events"]] == \
        [(usage_id, False, t.member.user_id)]


async def post(http, headers, **overrides):
    body = {"api_name": "llm_query", "endpoint": "/chat", "units_used": 346, "cost_usd": 0.0043, **overrides}
    reply = await http.post("/usage", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_members_see_only_their_own(http, new_tenant):
    t = await new_tenant()
    mine = await post(http, t.member.headers)
    theirs = await post(http, t.other.headers)
    admins = await post(http, t.admin.headers)
    assert admins["api_key_used"].startswith("key_")  # omitted: the caller's own key

    own = (await http.get("/usage", headers=t.member.headers)).json()
    assert [r["usage_id"] for r in own] == [mine["usage_id"]]
    everything = (await http.get("/usage", headers=t.admin.headers)).json()
    assert {r["usage_id"] for r in everything} == {mine["usage_id"], theirs["usage_id"], admins["usage_id"]}

    forbidden = await http.get(f"/usage/user/{t.other.user_id}", headers=t.member.headers)
    assert forbidden.status_code == 403 and set(forbidden.json()) == {"detail"}
    assert isinstance(forbidden.json()["detail"], str)
    assert (await http.get(f"/usage/user/{t.other.user_id}", headers=t.admin.headers)).json() == [theirs]
    assert (await http.get(f"/usage/user/{t.member.user_id}", headers=t.member.headers)).json() == [mine]

    hidden = await http.get(f"/usage/{theirs['usage_id']}", headers=t.member.headers)
    assert hidden.status_code == 404 and hidden.json() == {"detail": "Usage record not found"}

    for method in ("PUT", "DELETE"):
        reply = await http.request(method, f"/usage/{mine['usage_id']}", json={"units_used": 0},
                                   headers=t.member.headers)
        assert reply.status_code == 403 and isinstance(reply.json()["detail"], str)
    assert (await http.get(f"/usage/{mine['usage_id']}", headers=t.member.headers)).json() == mine


async def test_other_organizations_are_invisible(http, new_tenant):
    t, stranger = await new_tenant(), await new_tenant()
    mine = await post(http, t.admin.headers)
    assert (await http.get(f"/usage/{mine['usage_id']}", headers=stranger.admin.headers)).status_code == 404
    assert (await http.get("/usage", headers=stranger.admin.headers)).json() == []
    assert (await http.delete(f"/usage/{mine['usage_id']}", headers=stranger.admin.headers)).status_code == 404


async def test_skip_and_limit_page_newest_first(http, new_tenant):
    t = await new_tenant()
    ids = [(await post(http, t.member.headers, units_used=i))["usage_id"] for i in range(5)]
    newest_first = ids[::-1]
    assert [r["usage_id"] for r in (await http.get("/usage", headers=t.member.headers)).json()] == newest_first

    pages = []
    for skip in (0, 2, 4, 6):
        page = await http.get(f"/usage?skip={skip}&limit=2", headers=t.member.headers)
        assert page.status_code == 200
        pages.append([r["usage_id"] for r in page.json()])
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:], []]
    assert (await http.get("/usage?limit=0", headers=t.member.headers)).json() == []
    user_page = await http.get(f"/usage/user/{t.member.user_id}?skip=1&limit=3", headers=t.member.headers)
    assert [r["usage_id"] for r in user_page.json()] == newest_first[1:4]


@pytest.mark.parametrize(("query", "loc"), [
    ("limit=1001", ["query", "limit"]),
    ("skip=-1", ["query", "skip"]),
    ("limit=many", ["query", "limit"]),
])
async def test_bad_paging_is_422(http, new_tenant, query, loc):
    t = await new_tenant()
    reply = await http.get(f"/usage?{query}", headers=t.member.headers)
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == loc


@pytest.mark.parametrize(("body", "loc", "kind"), [
    ({"endpoint": "/chat", "units_used": 1, "cost_usd": 0.1}, ["body", "api_name"], "missing"),
    ({"api_name": "a", "endpoint": "/chat", "units_used": -1, "cost_usd": 0.1}, ["body", "units_used"],
     "greater_than_equal"),
    ({"api_name": "a", "endpoint": "/chat", "units_used": 1.5, "cost_usd": 0.1}, ["body", "units_used"],
     "int_from_float"),
    ({"api_name": "a", "endpoint": "/chat", "units_used": 1, "cost_usd": -0.1}, ["body", "cost_usd"],
     "greater_than_equal"),
    ({"api_name": "a", "endpoint": "/chat", "units_used": 1, "cost_usd": "0.1234567890123456789"}, ["body", "cost_usd"],
     "value_error"),  # rejected by the server (at most 18 decimals), reported under the seed's field name
])
async def test_validation_errors_are_fastapi_422(http, new_tenant, body, loc, kind):
    t = await new_tenant()
    reply = await http.post("/usage", json=body, headers=t.member.headers)
    assert reply.status_code == 422, reply.text
    error = reply.json()["detail"][0]
    assert (error["loc"], error["type"]) == (loc, kind)
    assert isinstance(error["msg"], str) and not error["msg"].startswith("cost:")


async def test_malformed_bodies(http, new_tenant):
    t = await new_tenant()
    broken = await http.post("/usage", content=b'{"api_name": ', headers=t.member.headers)
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    nan = await http.post("/usage", content=b'{"api_name": "a", "endpoint": "e", "units_used": 1, "cost_usd": NaN}',
                          headers=t.member.headers)
    assert nan.status_code == 422
    # Nested deeper than the JSON decoder goes: malformed JSON, as in every dialect (this was a 500).
    deep = await http.post("/usage", content=b"[" * 5000 + b"]" * 5000, headers=t.member.headers)
    assert deep.status_code == 422 and deep.json()["detail"][0]["type"] == "json_invalid"
    empty_put = await http.put("/usage/whatever", json={}, headers=t.admin.headers)
    assert empty_put.status_code == 422


async def test_credentials_are_required(http):
    reply = await http.get("/usage")
    assert reply.status_code == 401
    assert isinstance(reply.json()["detail"], str)
    assert reply.headers["www-authenticate"] == "Bearer"


async def test_costs_are_exact_decimals(http, new_tenant):
    t = await new_tenant()
    raw = b'{"api_name": "a", "endpoint": "/e", "units_used": 1, "cost_usd": 0.100000000000000005}'
    reply = await http.post("/usage", content=raw, headers=t.admin.headers)
    assert '"cost_usd":0.100000000000000005' in reply.text
    parsed = json.loads(reply.text, parse_float=decimal.Decimal)
    assert parsed["cost_usd"] == decimal.Decimal("0.100000000000000005")


async def test_put_changes_only_what_it_names(http, new_tenant):
    t = await new_tenant()
    record = await post(http, t.member.headers, api_key_used="pk_1")
    put = await http.put(f"/usage/{record['usage_id']}", json={"endpoint": "/tts", "api_key_used": "pk_2"},
                         headers=t.admin.headers)
    assert put.status_code == 200, put.text
    assert put.json() == {**record, "endpoint": "/tts", "api_key_used": "pk_2"}
    missing = await http.put("/usage/00000000-0000-0000-0000-000000000000", json={"units_used": 1},
                             headers=t.admin.headers)
    assert missing.status_code == 404 and missing.json() == {"detail": "Usage record not found"}


async def test_idempotency_key_records_once(http, new_tenant):
    t = await new_tenant()
    headers = {**t.member.headers, "Idempotency-Key": "order-42"}
    first = await post(http, headers)
    second = await post(http, headers)
    assert first == second
    assert len((await http.get("/usage", headers=t.member.headers)).json()) == 1


async def test_events_of_other_kinds_are_not_listed(http, new_tenant):
    t = await new_tenant()
    other = await http.post("/v1/events", json={"kind": "completions", "input_tokens": 3}, headers=t.admin.headers)
    assert (await http.get("/usage", headers=t.admin.headers)).json() == []
    # ... but a usage id is an event id: it can still be read directly.
    got = await http.get(f"/usage/{other.json()['event_id']}", headers=auth(t.admin.key))
    assert got.status_code == 200 and got.json()["api_name"] is None

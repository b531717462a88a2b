"""Tenancy and auth (DESIGN §3): who may create what, how secrets are kept, and what
each kind of credential may see and do."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac

import grpc
import pytest
from google.protobuf import field_mask_pb2

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, records_pb2
from server.tenants.credentials import random_text
from tests.conftest import MASTER, Org, bearer

RECORDED = ingest_pb2.OUTCOME_RECORDED
REJECTED = ingest_pb2.OUTCOME_REJECTED


def ev(request_id: str, **fields) -> event_pb2.UsageEvent:
    fields.setdefault("kind", "completions")
    fields.setdefault("model", "gpt-4o")
    return event_pb2.UsageEvent(request_id=request_id, **fields)


async def expect_code(code: grpc.StatusCode, awaitable) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await awaitable
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def record(stubs, auth, request_id: str, **fields) -> str:
    r = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=ev(request_id, **fields)), metadata=auth)
    assert r.outcome == RECORDED
    return r.event_id


async def listed(stubs, auth, **req) -> list[event_pb2.UsageEvent]:
    out, token = [], ""
    while True:
        page = await stubs.records.ListEvents(
            records_pb2.ListEventsRequest(page_size=1000, page_token=token, **req), metadata=auth
        )
        out.extend(page.events)
        if not (token := page.next_page_token):
            return out


@dataclasses.dataclass
class Tenancy:
    org: Org
    oid: int
    alice: str  # member key bound to user alice
    bob: str  # member key bound to user bob
    boss: str  # admin user's key
    p1: str  # admin-role key restricted to project p1
    alice_password: str


async def tenancy(stubs, new_org, db) -> Tenancy:
    org = await new_org()
    oid = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    for pid in ("p1", "p2"):
        await stubs.admin.CreateProject(admin_pb2.CreateProjectRequest(name=pid), metadata=org.auth)
    password = "pw-" + random_text(12)
    roles = (("alice", admin_pb2.ROLE_MEMBER), ("bob", admin_pb2.ROLE_MEMBER), ("boss", admin_pb2.ROLE_ADMIN))
    for user_id, role in roles:
        await stubs.admin.CreateUser(
            admin_pb2.CreateUserRequest(username=f"{user_id}-{org.organization_id}", password=password, role=role,
                                        user_id=user_id),
            metadata=org.auth,
        )
    keys = {}
    for user_id in ("alice", "bob", "boss"):
        keys[user_id] = (await stubs.admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(user_id=user_id, name=user_id), metadata=org.auth
        )).key
    keys["p1"] = (await stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(project_id="p1", name="p1"), metadata=org.auth
    )).key
    return Tenancy(org, oid, keys["alice"], keys["bob"], keys["boss"], keys["p1"], password)


async def test_master_creates_organizations(stubs, new_org, db):
    name = "acme-" + random_text(8)
    org = await stubs.admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name=name), metadata=MASTER)
    assert org.name == name and org.organization_id.startswith("org_")
    row = await db.fetchrow("select id, name from organizations where id = $1", org.organization_id)
    assert dict(row) == {"id": org.organization_id, "name": name}
    all_orgs = await stubs.admin.ListOrganizations(admin_pb2.ListOrganizationsRequest(), metadata=MASTER)
    assert {"default", name} <= {o.name for o in all_orgs.organizations}
    await expect_code(
        grpc.StatusCode.ALREADY_EXISTS,
        stubs.admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name=name), metadata=MASTER),
    )

    # An organization admin sees only its own organization and cannot create others.
    other = await new_org()
    mine = await stubs.admin.ListOrganizations(admin_pb2.ListOrganizationsRequest(), metadata=other.auth)
    assert [o.organization_id for o in mine.organizations] == [other.organization_id]
    await expect_code(
        grpc.StatusCode.PERMISSION_DENIED,
        stubs.admin.CreateOrganization(admin_pb2.CreateOrganizationRequest(name="x-" + name), metadata=other.auth),
    )
    assert await db.fetchval("select count(*) from organizations where name = $1", "x-" + name) == 0


async def test_org_admin_builds_its_tenancy(stubs, new_org, db):
    t = await tenancy(stubs, new_org, db)
    projects = await stubs.admin.ListProjects(admin_pb2.ListProjectsRequest(), metadata=t.org.auth)
    assert [p.project_id for p in projects.projects] == ["p1", "p2"]
    users = await stubs.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=t.org.auth)
    assert {(u.user_id, u.role) for u in users.users} == {
        ("alice", admin_pb2.ROLE_MEMBER), ("bob", admin_pb2.ROLE_MEMBER), ("boss", admin_pb2.ROLE_ADMIN),
    }
    who = {}
    for name, key in (("alice", t.alice), ("boss", t.boss), ("p1", t.p1)):
        who[name] = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(key))
        assert who[name].organization_id == t.org.organization_id and not who[name].master
    assert (who["alice"].role, who["alice"].user_id, who["alice"].project_id) == (admin_pb2.ROLE_MEMBER, "alice", "")
    assert (who["boss"].role, who["boss"].user_id) == (admin_pb2.ROLE_ADMIN, "boss")
    assert (who["p1"].role, who["p1"].user_id, who["p1"].project_id) == (admin_pb2.ROLE_ADMIN, "", "p1")

    keys = await stubs.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=t.org.auth)
    assert {(k.name, k.project_id, k.user_id) for k in keys.api_keys} == {
        ("admin", "", ""), ("alice", "", "alice"), ("bob", "", "bob"), ("boss", "", "boss"), ("p1", "p1", ""),
    }
    rows = await db.fetch("select project_id, user_id, role from api_keys where org_id = $1", t.oid)
    assert sorted((r["project_id"] or "", r["user_id"] or "", r["role"]) for r in rows) == sorted([
        ("", "", "admin"), ("", "alice", "member"), ("", "bob", "member"), ("", "boss", "admin"), ("p1", "", "admin"),
    ])

    # Keys for things that do not exist, and a member key with the admin role, are refused.
    await expect_code(grpc.StatusCode.NOT_FOUND, stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(project_id="nope"), metadata=t.org.auth))
    await expect_code(grpc.StatusCode.NOT_FOUND, stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(user_id="nobody"), metadata=t.org.auth))
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(user_id="alice", role=admin_pb2.ROLE_ADMIN), metadata=t.org.auth))

    # Neither members nor project-restricted keys administer the organization.
    for key in (t.alice, t.p1):
        await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.admin.CreateProject(
            admin_pb2.CreateProjectRequest(name="p9"), metadata=bearer(key)))
        await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.admin.CreateApiKey(
            admin_pb2.CreateApiKeyRequest(), metadata=bearer(key)))
        await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.admin.ListUsers(
            admin_pb2.ListUsersRequest(), metadata=bearer(key)))
    assert await db.fetchval("select count(*) from projects where org_id = $1", t.oid) == 2

    # An organization admin cannot reach into another organization.
    other = await new_org()
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.admin.CreateUser(
        admin_pb2.CreateUserRequest(organization=other.organization_id, username="intruder-" + random_text(6),
                                    password="long enough"), metadata=t.org.auth))
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(organization=other.organization_id), metadata=t.org.auth))


async def test_api_key_plaintext_shown_once_and_stored_hashed(stubs, new_org, db):
    org = await new_org()
    created = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(name="ci"), metadata=org.auth)
    key = created.key
    assert key and created.api_key.api_key_id and key.startswith(created.api_key.prefix)
    secret = key[len(created.api_key.prefix):]
    assert len(secret) >= 20

    row = await db.fetchrow("select * from api_keys where api_key_id = $1", created.api_key.api_key_id)
    assert bytes(row["secret_hash"]) == hashlib.sha256(key.encode()).digest()
    for column, value in row.items():
        text = bytes(value).hex() if isinstance(value, (bytes, memoryview)) else str(value)
        assert key not in text and secret not in text, column
    as_json = await db.fetchval("select row_to_json(k)::text from api_keys k where api_key_id = $1",
                                created.api_key.api_key_id)
    assert secret not in as_json

    # Never shown again: not in listings.
    listing = await stubs.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=org.auth)
    assert created.api_key.api_key_id in {k.api_key_id for k in listing.api_keys}
    assert secret.encode() not in listing.SerializeToString()

    # The key works; a key differing in its last character does not.
    me = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(key))
    assert me.api_key_id == created.api_key.api_key_id
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    await expect_code(grpc.StatusCode.UNAUTHENTICATED,
                      stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(forged)))


async def test_password_stored_as_scrypt(stubs, new_org, db):
    org = await new_org()
    username, password = "carol-" + random_text(8), "s3cret-" + random_text(10)
    await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(username=username, password=password), metadata=org.auth)
    stored = await db.fetchval("select password_hash from users where username = $1", username)
    assert password not in stored
    scheme, n, r, p, salt, digest = stored.split("$")
    assert scheme == "scrypt" and int(n) >= 2**14

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    assert len(unb64(salt)) >= 16
    expected = hashlib.scrypt(password.encode(), salt=unb64(salt), n=int(n), r=int(r), p=int(p))
    assert hmac.compare_digest(expected, unb64(digest))
    # Salted: the same password hashes differently for another user.
    other = "dave-" + random_text(8)
    await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(username=other, password=password), metadata=org.auth)
    assert await db.fetchval("select password_hash from users where username = $1", other) != stored
    await expect_code(grpc.StatusCode.INVALID_ARGUMENT, stubs.admin.CreateUser(
        admin_pb2.CreateUserRequest(username="eve-" + random_text(8), password="short"), metadata=org.auth))
    await expect_code(grpc.StatusCode.ALREADY_EXISTS, stubs.admin.CreateUser(
        admin_pb2.CreateUserRequest(username=username, password=password, user_id="other-id"), metadata=org.auth))


async def test_login_token_works_as_bearer(stubs, new_org, db):
    t = await tenancy(stubs, new_org, db)
    username = f"alice-{t.org.organization_id}"
    login = await stubs.admin.Login(admin_pb2.LoginRequest(username=username, password=t.alice_password))
    assert login.token and login.user.user_id == "alice" and login.user.organization_id == t.org.organization_id
    assert login.expire_time.seconds > 0
    me = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(login.token))
    assert (me.organization_id, me.user_id, me.role) == (t.org.organization_id, "alice", admin_pb2.ROLE_MEMBER)

    # The token records usage as alice and reads alice's usage.
    event_id = await record(stubs, bearer(login.token), "tok-1")
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=event_id), metadata=t.org.auth)
    assert got.user_id == "alice"
    assert [e.event_id for e in await listed(stubs, bearer(login.token))] == [event_id]

    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.admin.Login(
        admin_pb2.LoginRequest(username=username, password=t.alice_password + "x")))
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.admin.Login(
        admin_pb2.LoginRequest(username="nobody-" + random_text(8), password=t.alice_password)))
    tampered = login.token[:-2] + ("AA" if login.token[-2:] != "AA" else "BB")
    await expect_code(grpc.StatusCode.UNAUTHENTICATED,
                      stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(tampered)))


async def test_other_organization_sees_nothing(stubs, new_org, db):
    a, b = await new_org(), await new_org()
    event_id = await record(stubs, a.auth, "shared-rid", input_tokens=5)
    await expect_code(grpc.StatusCode.NOT_FOUND, stubs.records.GetEvent(
        records_pb2.GetEventRequest(event_id=event_id), metadata=b.auth))
    await expect_code(grpc.StatusCode.NOT_FOUND, stubs.records.GetEvent(
        records_pb2.GetEventRequest(request_id="shared-rid"), metadata=b.auth))
    assert await listed(stubs, b.auth, include_voided=True) == []
    await expect_code(grpc.StatusCode.NOT_FOUND, stubs.records.VoidEvent(
        records_pb2.VoidEventRequest(event_id=event_id), metadata=b.auth))
    await expect_code(grpc.StatusCode.NOT_FOUND, stubs.records.UpdateEvent(
        records_pb2.UpdateEventRequest(event=event_pb2.UsageEvent(event_id=event_id, input_tokens=0),
                                       update_mask=field_mask_pb2.FieldMask(paths=["input_tokens"])),
        metadata=b.auth))
    # Dedupe is per organization: the same request_id is a new event in b.
    other_id = await record(stubs, b.auth, "shared-rid")
    assert other_id != event_id
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=event_id), metadata=a.auth)
    assert got.active and got.input_tokens == 5
    # The body cannot name another organization.
    sneaky = ev("sneaky", organization_id=a.organization_id)
    r = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(event=sneaky), metadata=b.auth)
    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=r.event_id), metadata=b.auth)
    assert got.organization_id == b.organization_id
    assert [e.request_id for e in await listed(stubs, a.auth)] == ["shared-rid"]
    # Nor the organization header, unless the caller is the master key.
    header = (*b.auth, ("x-metering-organization", a.organization_id))
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.records.ListEvents(
        records_pb2.ListEventsRequest(), metadata=header))
    as_master = (*MASTER, ("x-metering-organization", a.organization_id))
    seen = await stubs.records.ListEvents(records_pb2.ListEventsRequest(), metadata=as_master)
    assert [e.event_id for e in seen.events] == [event_id]


async def test_member_sees_only_its_own_usage(stubs, new_org, db):
    t = await tenancy(stubs, new_org, db)
    mine = await record(stubs, bearer(t.alice), "a-1")  # defaults to alice
    also_mine = await record(stubs, t.org.auth, "a-2", user_id="alice")  # admin recording for alice
    bobs = await record(stubs, t.org.auth, "b-1", user_id="bob")
    nobodys = await record(stubs, t.org.auth, "n-1")

    assert {e.event_id for e in await listed(stubs, bearer(t.alice))} == {mine, also_mine}
    assert {e.event_id for e in await listed(stubs, bearer(t.alice), user_ids=["bob"])} == set()
    assert {e.event_id for e in await listed(stubs, bearer(t.bob))} == {bobs}
    assert {e.event_id for e in await listed(stubs, t.org.auth)} == {mine, also_mine, bobs, nobodys}
    assert {e.event_id for e in await listed(stubs, bearer(t.boss))} == {mine, also_mine, bobs, nobodys}
    for other in (bobs, nobodys):
        await expect_code(grpc.StatusCode.NOT_FOUND, stubs.records.GetEvent(
            records_pb2.GetEventRequest(event_id=other), metadata=bearer(t.alice)))
    await expect_code(grpc.StatusCode.NOT_FOUND, stubs.records.GetEvent(
        records_pb2.GetEventRequest(request_id="b-1"), metadata=bearer(t.alice)))
    assert (await stubs.records.GetEvent(
        records_pb2.GetEventRequest(event_id=also_mine), metadata=bearer(t.alice))).user_id == "alice"

    # A member cannot record usage for someone else.
    await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("a-3", user_id="bob")), metadata=bearer(t.alice)))
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(
        events=[ev("a-4", user_id="bob"), ev("a-5")]), metadata=bearer(t.alice))
    assert [(r.outcome, r.reason, r.field) for r in resp.results] == [
        (REJECTED, "PERMISSION_DENIED", "user_id"), (RECORDED, "", "")]
    assert await db.fetchval(
        "select count(*) from request_keys where org_id = $1 and request_id in ('a-3', 'a-4')", t.oid) == 0

    # Nor adjust or void anything, even its own.
    for event_id in (mine, bobs):
        await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.records.UpdateEvent(
            records_pb2.UpdateEventRequest(event=event_pb2.UsageEvent(event_id=event_id, input_tokens=1),
                                           update_mask=field_mask_pb2.FieldMask(paths=["input_tokens"])),
            metadata=bearer(t.alice)))
        await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.records.VoidEvent(
            records_pb2.VoidEventRequest(event_id=event_id), metadata=bearer(t.alice)))
    assert await db.fetchval("select count(*) from event_adjustments where org_id = $1", t.oid) == 0
    assert await db.fetchval("select bool_and(active) from events where org_id = $1", t.oid) is True


async def test_project_key_is_confined_to_its_project(stubs, new_org, db):
    t = await tenancy(stubs, new_org, db)
    p1_auth = bearer(t.p1)
    own = await record(stubs, p1_auth, "p1-a")  # project defaults to p1
    explicit = await record(stubs, p1_auth, "p1-b", project_id="p1")
    elsewhere = await record(stubs, t.org.auth, "p2-a", project_id="p2")
    unscoped = await record(stubs, t.org.auth, "none-a")

    got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=own), metadata=t.org.auth)
    assert got.project_id == "p1"
    assert {e.event_id for e in await listed(stubs, p1_auth)} == {own, explicit}
    assert await listed(stubs, p1_auth, project_ids=["p2"]) == []
    for other in (elsewhere, unscoped):
        await expect_code(grpc.StatusCode.NOT_FOUND, stubs.records.GetEvent(
            records_pb2.GetEventRequest(event_id=other), metadata=p1_auth))

    await expect_code(grpc.StatusCode.PERMISSION_DENIED, stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("p1-c", project_id="p2")), metadata=p1_auth))
    resp = await stubs.ingest.RecordEvents(ingest_pb2.RecordEventsRequest(
        events=[ev("p1-d"), ev("p1-e", project_id="p2"), ev("p1-f")]), metadata=p1_auth)
    assert [r.outcome for r in resp.results] == [RECORDED, REJECTED, RECORDED]
    assert (resp.results[1].reason, resp.results[1].field) == ("PERMISSION_DENIED", "project_id")
    rows = await db.fetch(
        "select e.request_id, s.project_id from events e join series s using (org_id, series_id) "
        "where e.org_id = $1 and e.request_id like 'p1-%'", t.oid)
    assert sorted((r["request_id"], r["project_id"]) for r in rows) == [
        ("p1-a", "p1"), ("p1-b", "p1"), ("p1-d", "p1"), ("p1-f", "p1")]
    # The stream applies the same rule, per item.
    call = stubs.ingest.StreamEvents(metadata=p1_auth)
    await call.write(ingest_pb2.StreamEventsRequest(event=ev("p1-g", project_id="p2"), sequence=1))
    await call.write(ingest_pb2.StreamEventsRequest(event=ev("p1-h"), sequence=2))
    await call.done_writing()
    acks = {}
    while (ack := await call.read()) is not grpc.aio.EOF:
        acks[ack.sequence] = ack.result
    assert (acks[1].outcome, acks[1].reason) == (REJECTED, "PERMISSION_DENIED")
    assert acks[2].outcome == RECORDED


async def test_revoked_key_is_refused_at_once(stubs, new_org, db):
    org = await new_org()
    created = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(name="temp"), metadata=org.auth)
    auth = bearer(created.key)
    await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=auth)  # warms any cache
    await record(stubs, auth, "before-revoke")

    revoked = await stubs.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(api_key_id=created.api_key.api_key_id), metadata=org.auth)
    assert revoked.revoked and revoked.revoke_time.seconds > 0
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=auth))
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("after-revoke")), metadata=auth))
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.records.ListEvents(
        records_pb2.ListEventsRequest(), metadata=auth))
    oid = await db.fetchval("select org_id from organizations where id = $1", org.organization_id)
    assert await db.fetchval("select revoke_time is not null from api_keys where api_key_id = $1",
                             created.api_key.api_key_id)
    assert await db.fetchval(
        "select count(*) from request_keys where org_id = $1 and request_id = 'after-revoke'", oid) == 0
    listing = await stubs.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=org.auth)
    assert {k.api_key_id: k.revoked for k in listing.api_keys}[created.api_key.api_key_id] is True

    # Revoking by the plaintext key works too; the other keys keep working.
    second = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(name="temp2"), metadata=org.auth)
    await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(second.key))
    await stubs.admin.RevokeApiKey(admin_pb2.RevokeApiKeyRequest(api_key_id=second.key), metadata=org.auth)
    await expect_code(grpc.StatusCode.UNAUTHENTICATED,
                      stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(second.key)))
    await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=org.auth)


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", ""),),
        (("authorization", "Bearer"),),
        (("authorization", "Bearer    "),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "mk_abcdefghi_" + "x" * 32),),
        (("authorization", "Bearer mk_abcdefghi_" + "x" * 32),),
        (("authorization", "Bearer not-a-key"),),
        (("authorization", "Bearer mlt.garbage.garbage"),),
        (("x-api-key", "anything"),),
    ],
    ids=["none", "empty", "bearer-only", "bearer-blank", "basic", "no-scheme", "unknown-key", "junk", "bad-token",
         "other-header"],
)
async def test_missing_or_malformed_credentials(stubs, db, metadata):
    await expect_code(grpc.StatusCode.UNAUTHENTICATED,
                      stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=metadata))
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.ingest.RecordEvent(
        ingest_pb2.RecordEventRequest(event=ev("anon-" + random_text(8))), metadata=metadata))
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.records.ListEvents(
        records_pb2.ListEventsRequest(), metadata=metadata))
    await expect_code(grpc.StatusCode.UNAUTHENTICATED, stubs.admin.CreateOrganization(
        admin_pb2.CreateOrganizationRequest(name="anon-" + random_text(8)), metadata=metadata))
    call = stubs.ingest.StreamEvents(metadata=metadata)
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.UNAUTHENTICATED

"""A user's id is a stable uuid (seed 002's `user_id`), distinct from its username, which is for login:
the id is what the user's events carry and what a key bound to the user scopes to."""

from __future__ import annotations

import uuid

from metering.v1 import admin_pb2, event_pb2, ingest_pb2, records_pb2
from server.tenants.credentials import random_text
from tests.conftest import bearer


async def test_users_get_a_uuid_that_their_events_carry(stubs, new_org):
    org = await new_org()
    username, password = f"ada-{random_text(8).lower()}", "correct horse battery"
    user = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(username=username, password=password),
                                        metadata=org.auth)
    assert str(uuid.UUID(user.user_id)) == user.user_id and user.username == username
    listed = await stubs.admin.ListUsers(admin_pb2.ListUsersRequest(), metadata=org.auth)
    assert [(u.user_id, u.username) for u in listed.users] == [(user.user_id, username)]

    # A key for the user may name it by id or by username: either way it is bound to the id.
    by_name = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(user_id=username), metadata=org.auth)
    by_id = await stubs.admin.CreateApiKey(admin_pb2.CreateApiKeyRequest(user_id=user.user_id), metadata=org.auth)
    assert by_name.api_key.user_id == by_id.api_key.user_id == user.user_id

    # Events recorded by the user's key and by its login token carry the id; the login still takes the name.
    login = await stubs.admin.Login(admin_pb2.LoginRequest(username=username, password=password))
    for credential in (by_name.key, login.token):
        me = await stubs.admin.WhoAmI(admin_pb2.WhoAmIRequest(), metadata=bearer(credential))
        assert me.user_id == user.user_id
        done = await stubs.ingest.RecordEvent(ingest_pb2.RecordEventRequest(
            event=event_pb2.UsageEvent(kind="api_call", units_used=1)), metadata=bearer(credential))
        got = await stubs.records.GetEvent(records_pb2.GetEventRequest(event_id=done.event_id), metadata=org.auth)
        assert got.user_id == user.user_id

    # Chosen ids still work (and stay what the caller chose).
    chosen = await stubs.admin.CreateUser(admin_pb2.CreateUserRequest(
        username=f"bob-{random_text(8).lower()}", password=password, user_id="bob-7"), metadata=org.auth)
    assert chosen.user_id == "bob-7"

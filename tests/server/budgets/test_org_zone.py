"""The organization's time zone (AdminService organization settings): read by every member,
written by its admins, invisible to other organizations; the zone of budgets written without one."""

from __future__ import annotations

import grpc
import pytest

from metering.v1 import admin_pb2, budgets_pb2


async def test_members_read_the_zone_admins_write_it_other_organizations_see_nothing(new_team, new_org, http):
    team, stranger = await new_team(), await new_org()
    admin = team.stubs.admin
    assert (await admin.GetOrganizationSettings(admin_pb2.GetOrganizationSettingsRequest(),
                                                metadata=team.member)).time_zone == "UTC"  # the default
    with pytest.raises(grpc.aio.AioRpcError) as member_writes:
        await admin.UpdateOrganizationSettings(admin_pb2.UpdateOrganizationSettingsRequest(
            time_zone="Asia/Kathmandu"), metadata=team.member)
    with pytest.raises(grpc.aio.AioRpcError) as bad_zone:
        await admin.UpdateOrganizationSettings(admin_pb2.UpdateOrganizationSettingsRequest(
            time_zone="Mars/Olympus_Mons"), metadata=team.admin)
    written = await admin.UpdateOrganizationSettings(admin_pb2.UpdateOrganizationSettingsRequest(
        time_zone=" America/New_York "), metadata=team.admin)
    read = await admin.GetOrganizationSettings(admin_pb2.GetOrganizationSettingsRequest(), metadata=team.member)
    rest = await http.get("/v1/organization_settings", headers={"Authorization": f"Bearer {team.org.admin_key}"})
    for call in (admin.GetOrganizationSettings(admin_pb2.GetOrganizationSettingsRequest(
                     organization=team.org.organization_id), metadata=stranger.auth),
                 admin.UpdateOrganizationSettings(admin_pb2.UpdateOrganizationSettingsRequest(
                     organization=team.org.organization_id, time_zone="UTC"), metadata=stranger.auth)):
        with pytest.raises(grpc.aio.AioRpcError) as other_org:
            await call
        assert other_org.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
    own = await admin.GetOrganizationSettings(admin_pb2.GetOrganizationSettingsRequest(), metadata=stranger.auth)

    assert member_writes.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert bad_zone.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert str(bad_zone.value.details()).startswith("time_zone")
    assert (written.organization_id, written.time_zone) == (team.org.organization_id, "America/New_York")
    assert read == written
    assert rest.status_code == 200 and rest.json()["time_zone"] == "America/New_York"
    assert own.time_zone == "UTC"  # the other organization's own setting is untouched


async def test_a_budget_written_without_a_zone_takes_the_organizations(new_team):
    team = await new_team()
    await team.stubs.admin.UpdateOrganizationSettings(admin_pb2.UpdateOrganizationSettingsRequest(
        time_zone="Australia/Lord_Howe"), metadata=team.admin)
    plain = await team.create(name="plain")
    zoned = await team.create(name="zoned", time_zone="Asia/Kathmandu")
    created_in = plain.time_zone
    await team.stubs.admin.UpdateOrganizationSettings(admin_pb2.UpdateOrganizationSettingsRequest(
        time_zone="Europe/Paris"), metadata=team.admin)
    plain.limit = "60"
    kept = await team.budgets.UpdateBudget(budgets_pb2.UpdateBudgetRequest(budget=plain, update_mask=["limit"]),
                                           metadata=team.admin)
    plain.time_zone = ""
    cleared = await team.budgets.UpdateBudget(budgets_pb2.UpdateBudgetRequest(
        budget=plain, update_mask=["time_zone"]), metadata=team.admin)

    assert (created_in, zoned.time_zone) == ("Australia/Lord_Howe", "Asia/Kathmandu")
    assert kept.time_zone == "Australia/Lord_Howe"  # a change of the organization's zone moves no budget
    assert cleared.time_zone == "Europe/Paris"  # a zone cleared: the organization's, as it is now

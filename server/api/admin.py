"""AdminService: organizations, projects, users, API keys, login."""

from __future__ import annotations

from metering.v1 import admin_pb2, admin_pb2_grpc
from server.api.context import Context, Core, caller, in_organization
from server.core import convert
from server.core.errors import PermissionDenied
from server.core.principal import Principal
from server.query.buckets import parse_zone
from server.retention.settings import RetentionSettings, RetentionView


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, core: Core) -> None:
        self.core = core
        self.retention = RetentionSettings(core.records.horizons)

    async def _admin(self, context: Context, organization: str = "") -> Principal:
        """An organization-wide admin of the target organization (default: the caller's)."""
        principal = await caller(self.core, context)
        if not principal.is_admin or principal.project_id is not None:
            raise PermissionDenied("this needs an organization admin's credentials")
        return await in_organization(self.core, principal, organization)

    async def _master(self, context: Context) -> Principal:
        principal = await caller(self.core, context)
        if not principal.master:
            raise PermissionDenied("only the master key may manage organizations")
        return principal

    async def CreateOrganization(
        self, request: admin_pb2.CreateOrganizationRequest, context: Context,
    ) -> admin_pb2.Organization:
        await self._master(context)
        return convert.organization(await self.core.tenants.create_organization(request.name))

    async def ListOrganizations(
        self, request: admin_pb2.ListOrganizationsRequest, context: Context,
    ) -> admin_pb2.ListOrganizationsResponse:
        principal = await caller(self.core, context)
        if principal.master:
            rows = await self.core.tenants.list_organizations()
        else:
            rows = [await self.core.tenants.organization_by_number(principal.org_id)]
        return admin_pb2.ListOrganizationsResponse(organizations=[convert.organization(r) for r in rows])

    async def CreateProject(self, request: admin_pb2.CreateProjectRequest, context: Context) -> admin_pb2.Project:
        p = await self._admin(context, request.organization)
        row = await self.core.tenants.create_project(p.org_id, request.name, request.project_id)
        return convert.project(row, p.organization_id)

    async def ListProjects(
        self, request: admin_pb2.ListProjectsRequest, context: Context,
    ) -> admin_pb2.ListProjectsResponse:
        p = await self._admin(context, request.organization)
        rows = await self.core.tenants.list_projects(p.org_id)
        return admin_pb2.ListProjectsResponse(projects=[convert.project(r, p.organization_id) for r in rows])

    async def CreateUser(self, request: admin_pb2.CreateUserRequest, context: Context) -> admin_pb2.User:
        p = await self._admin(context, request.organization)
        role = convert.ROLE_FROM_PROTO.get(request.role, "") or "member"
        row = await self.core.tenants.create_user(p.org_id, request.username, request.password, role, request.user_id)
        return convert.user(row, p.organization_id)

    async def ListUsers(self, request: admin_pb2.ListUsersRequest, context: Context) -> admin_pb2.ListUsersResponse:
        p = await self._admin(context, request.organization)
        rows = await self.core.tenants.list_users(p.org_id)
        return admin_pb2.ListUsersResponse(users=[convert.user(r, p.organization_id) for r in rows])

    async def CreateApiKey(
        self, request: admin_pb2.CreateApiKeyRequest, context: Context,
    ) -> admin_pb2.CreateApiKeyResponse:
        p = await self._admin(context, request.organization)
        row, key = await self.core.tenants.create_api_key(
            p.org_id, project_id=request.project_id, user_id=request.user_id,
            role=convert.ROLE_FROM_PROTO.get(request.role, ""), name=request.name,
        )
        return admin_pb2.CreateApiKeyResponse(api_key=convert.api_key(row, p.organization_id), key=key)

    async def ListApiKeys(
        self, request: admin_pb2.ListApiKeysRequest, context: Context,
    ) -> admin_pb2.ListApiKeysResponse:
        p = await self._admin(context, request.organization)
        rows = await self.core.tenants.list_api_keys(p.org_id)
        return admin_pb2.ListApiKeysResponse(api_keys=[convert.api_key(r, p.organization_id) for r in rows])

    async def RevokeApiKey(self, request: admin_pb2.RevokeApiKeyRequest, context: Context) -> admin_pb2.ApiKey:
        p = await self._admin(context, request.organization)
        row = await self.core.tenants.revoke_api_key(p.org_id, request.api_key_id)
        self.core.auth.forget()
        return convert.api_key(row, p.organization_id)

    async def Login(self, request: admin_pb2.LoginRequest, context: Context) -> admin_pb2.LoginResponse:
        row, token, expires = await self.core.tenants.login(request.username, request.password, request.ttl_seconds)
        org = await self.core.tenants.organization_by_number(row["org_id"])
        response = admin_pb2.LoginResponse(token=token, user=convert.user(row, org["id"]))
        response.expire_time.seconds = expires
        return response

    async def WhoAmI(self, request: admin_pb2.WhoAmIRequest, context: Context) -> admin_pb2.Principal:
        p = await caller(self.core, context)
        return admin_pb2.Principal(
            organization_id=p.organization_id, role=convert.ROLE_TO_PROTO[p.role], user_id=p.user_id or "",
            project_id=p.project_id or "", api_key_id=p.api_key_id or "", master=p.master,
        )

    async def GetRetention(self, request: admin_pb2.GetRetentionRequest, context: Context) -> admin_pb2.Retention:
        p = await self._admin(context, request.organization)
        return _retention(await self.retention.get(p.org_id), p.organization_id)

    async def UpdateRetention(
        self, request: admin_pb2.UpdateRetentionRequest, context: Context,
    ) -> admin_pb2.Retention:
        p = await self._admin(context, request.organization)
        view = await self.retention.put(
            p.org_id, request.event_days if request.HasField("event_days") else None,
            request.payload_days if request.HasField("payload_days") else None)
        return _retention(view, p.organization_id)

    async def GetOrganizationSettings(
        self, request: admin_pb2.GetOrganizationSettingsRequest, context: Context,
    ) -> admin_pb2.OrganizationSettings:
        p = await in_organization(self.core, await caller(self.core, context), request.organization)
        return admin_pb2.OrganizationSettings(organization_id=p.organization_id,
                                              time_zone=await self.core.tenants.time_zone(p.org_id))

    async def UpdateOrganizationSettings(
        self, request: admin_pb2.UpdateOrganizationSettingsRequest, context: Context,
    ) -> admin_pb2.OrganizationSettings:
        p = await self._admin(context, request.organization)
        zone = parse_zone(request.time_zone.strip()).key  # errors name time_zone
        return admin_pb2.OrganizationSettings(organization_id=p.organization_id,
                                              time_zone=await self.core.tenants.set_time_zone(p.org_id, zone))


def _retention(view: RetentionView, organization_id: str) -> admin_pb2.Retention:
    reply = admin_pb2.Retention(
        organization_id=organization_id, event_days=view.event_days, payload_days=view.payload_days,
        effective_event_days=view.effective.event_days or 0, effective_payload_days=view.effective.payload_days or 0,
    )
    if view.horizon.events is not None:
        reply.events_kept_from.CopyFrom(convert.timestamp(view.horizon.events))
    if view.horizon.payloads is not None:
        reply.payloads_kept_from.CopyFrom(convert.timestamp(view.horizon.payloads))
    return reply

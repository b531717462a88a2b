"""Who is calling, and what they may see."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Principal:
    org_id: int  # internal organization number
    organization_id: str  # public organization id
    role: str  # "admin" or "member"
    user_id: str | None = None
    project_id: str | None = None
    api_key_id: str | None = None
    master: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def acting_in(self, org_id: int, organization_id: str) -> Principal:
        """The master key acting as admin of another organization."""
        return dataclasses.replace(self, org_id=org_id, organization_id=organization_id)

    def read_scope(self) -> tuple[str | None, str | None, str | None]:
        """(project_id, user_id, api_key_id) every read is restricted to; None = no restriction."""
        project = self.project_id
        if self.is_admin:
            return project, None, None
        if self.user_id is not None:
            return project, self.user_id, None
        return project, None, self.api_key_id

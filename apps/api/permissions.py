"""Hub-role permissions. The default is to deny: every view names the roles it admits."""

from rest_framework.permissions import BasePermission

from apps.api.choices import HubRole


class DenyAll(BasePermission):
    """The default permission: a view that forgets to declare its roles is closed, not open."""

    message = "this endpoint admits no one"

    def has_permission(self, request, view) -> bool:
        return False


class HubRolePermission(BasePermission):
    """Admits principals holding one of ``roles``; ``admin`` may do everything."""

    roles: frozenset[str] = frozenset()

    def has_permission(self, request, view) -> bool:
        role = getattr(request.user, "hub_role", None)
        return role == HubRole.ADMIN or role in self.roles

    @property
    def message(self) -> str:
        allowed = ", ".join(sorted({HubRole.ADMIN, *self.roles}))
        return f"this endpoint needs one of the hub roles: {allowed}"


class MintsEdgeTokens(HubRolePermission):
    roles = frozenset({HubRole.SERVICE})

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


# What each hub role may do (shared/DESIGN.md, "Hub roles"); ``admin`` may do everything.
READERS = frozenset({HubRole.EDITOR, HubRole.AUDITOR, HubRole.SERVICE})  # read policy and identities
EDITORS = frozenset({HubRole.EDITOR})  # change policy and mappings, request syncs and deploys
AUDITORS = frozenset({HubRole.AUDITOR})  # the audit log


class ActionRoles(BasePermission):
    """Admits per viewset action: the view declares ``hub_roles = {action: roles}``. An action it does
    not declare admits no one, ``admin`` included, so a new action is closed until declared (and
    the permission-matrix test names it)."""

    message = "this endpoint admits no one"

    def has_permission(self, request, view) -> bool:
        declared = getattr(view, "hub_roles", {})
        if view.action not in declared:
            return False
        roles = declared[view.action]
        # a fresh instance per request (APIView.get_permissions), so the message may name the roles
        self.message = f"this endpoint needs one of the hub roles: {', '.join(sorted({HubRole.ADMIN, *roles}))}"
        return getattr(request.user, "hub_role", None) in {HubRole.ADMIN, *roles}

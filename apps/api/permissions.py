"""Hub-role permissions. The default is to deny: every view names the roles it admits."""

from rest_framework.permissions import BasePermission

from apps.api.choices import HubRole
from apps.api.selectors import principal_hub_roles


class DenyAll(BasePermission):
    """The default permission: a view that forgets to declare its roles is closed, not open."""

    message = "this endpoint admits no one"

    def has_permission(self, request, view) -> bool:
        return False


# What each hub role may do (shared/DESIGN.md, "Hub roles"); ``admin`` may do everything.
READERS = frozenset({HubRole.EDITOR, HubRole.AUDITOR, HubRole.SERVICE})  # read policy and identities
EDITORS = frozenset({HubRole.EDITOR})  # change policy and mappings, request syncs and deploys
AUDITORS = frozenset({HubRole.AUDITOR})  # the audit log
SERVICES = frozenset({HubRole.SERVICE})  # automation acting as its identity (edge tokens)
ADMIN_ONLY: frozenset[str] = frozenset()  # ActionRoles admits admin whatever an action declares
READ_ACTIONS = {"list": READERS, "retrieve": READERS}


class ActionRoles(BasePermission):
    """Admits per viewset action: the view declares ``hub_roles = {action: roles}``. An action it does
    not declare admits no one, ``admin`` included, so a new action is closed until declared (and
    the permission-matrix test names it). A principal may hold several roles: one admitted is enough."""

    message = "this endpoint admits no one"

    def has_permission(self, request, view) -> bool:
        held = principal_hub_roles(principal=request.user)
        if view.action is None and request.method.upper() not in view.allowed_methods:
            return bool(held)  # a method the route does not serve: DRF answers 405 to anyone with a role
        declared = getattr(view, "hub_roles", {})
        if view.action not in declared:
            return False
        roles = declared[view.action]
        # a fresh instance per request (APIView.get_permissions), so the message may name the roles
        self.message = f"this endpoint needs one of the hub roles: {', '.join(sorted({HubRole.ADMIN, *roles}))}"
        return not held.isdisjoint({HubRole.ADMIN, *roles})

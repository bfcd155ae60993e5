"""Which hub roles each page admits. Every UI view declares ``allowed_roles`` (a subclass of
``HubRoleView`` without it cannot be defined), and tests/ui/test_access_matrix.py walks every UI URL
with every hub role against it.

A signed-in user with no hub role at all (their IdP groups map to none) sees one page saying which
groups grant which role; one with roles, but not the page's, a 403 naming the roles that may.
"""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.template.response import TemplateResponse

from apps.api.choices import HubRole
from apps.api.selectors import user_hub_roles
from apps.ui.selectors import role_groups

READERS = frozenset({HubRole.ADMIN, HubRole.EDITOR, HubRole.AUDITOR})
EDITORS = frozenset({HubRole.ADMIN, HubRole.EDITOR})
ADMINS = frozenset({HubRole.ADMIN})
AUDIT_READERS = frozenset({HubRole.ADMIN, HubRole.AUDITOR})  # as the API's audit endpoints


class HubRoleView(LoginRequiredMixin):
    """A page for signed-in users holding one of ``allowed_roles``."""

    allowed_roles: frozenset[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "allowed_roles", None), frozenset):
            raise TypeError(f"{cls.__name__} must declare allowed_roles (a frozenset of hub roles)")

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()  # to the sign-in page, coming back here
        request.hub_roles = user_hub_roles(user=request.user)
        if not request.hub_roles:
            return TemplateResponse(request, "ui/no_access.html", {"role_groups": role_groups()}, status=403)
        if not request.hub_roles & self.allowed_roles:
            context = {"allowed": sorted(self.allowed_roles), "held": sorted(request.hub_roles)}
            return TemplateResponse(request, "ui/forbidden.html", context, status=403)
        return super().dispatch(request, *args, **kwargs)

"""Writes for the web UI's sign-in: a user's hub roles follow their IdP groups at every sign-in."""

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from apps.api.choices import HubRole
from apps.api.selectors import HUB_ROLE_GROUP_PREFIX, user_hub_roles
from apps.audit.services import audit_record
from apps.core.actors import Actor

# The roles an IdP group can grant in the UI; ``service`` is for API credentials only.
SIGN_IN_ROLES = (HubRole.ADMIN, HubRole.EDITOR, HubRole.AUDITOR)


def hub_roles_from_groups(groups: Iterable[str]) -> frozenset[str]:
    """The hub roles ``POLICYHUB_OIDC_ROLE_GROUPS`` grants to members of ``groups``."""
    held = set(groups)
    return frozenset(role for role in SIGN_IN_ROLES if held & set(settings.POLICYHUB_OIDC_ROLE_GROUPS.get(role, ())))


@transaction.atomic
def user_hub_roles_set(*, user, roles: frozenset[str], actor: Actor) -> frozenset[str]:
    """Make ``roles`` the user's hub roles (its ``policyhub-<role>`` groups); audited when they change.
    Returns the roles held before."""
    before = user_hub_roles(user=user) if not user.is_superuser else frozenset()
    if before == roles:
        return before
    wanted = [Group.objects.get_or_create(name=f"{HUB_ROLE_GROUP_PREFIX}{role}")[0] for role in sorted(roles)]
    user.groups.remove(*user.groups.filter(name__startswith=HUB_ROLE_GROUP_PREFIX))
    user.groups.add(*wanted)
    audit_record(
        actor=actor,
        action="user.hub_roles_changed",
        object_type="auth.user",
        object_id=user.pk,
        before={"roles": sorted(before)},
        after={"roles": sorted(roles)},
    )
    return before

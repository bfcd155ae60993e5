"""Reads for hub roles: which roles a signed-in Django user holds, and which any API principal holds."""

from apps.api.choices import HubRole

# A user holds a hub role by being in the Django auth group of this name (the OIDC login puts users
# into these groups from their IdP groups); superusers are admins without one.
HUB_ROLE_GROUP_PREFIX = "policyhub-"
HUB_ROLE_GROUPS = {f"{HUB_ROLE_GROUP_PREFIX}{role}": role for role in HubRole.values}


def user_hub_roles(*, user) -> frozenset[str]:
    """The hub roles of a Django user: ``admin`` for a superuser, else one per ``policyhub-<role>`` group."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset({HubRole.ADMIN})
    names = user.groups.filter(name__in=HUB_ROLE_GROUPS).values_list("name", flat=True)
    return frozenset(HUB_ROLE_GROUPS[name] for name in names)


def principal_hub_roles(*, principal) -> frozenset[str]:
    """The hub roles of ``request.user``: API principals (service tokens, Backstage callers) carry theirs,
    a session's Django user has them from its groups, anyone else has none."""
    roles = getattr(principal, "hub_roles", None)
    return roles if roles is not None else user_hub_roles(user=principal)

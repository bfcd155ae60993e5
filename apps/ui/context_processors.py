"""Template context every page gets."""

from apps.api.selectors import principal_hub_roles


def hub_roles(request) -> dict:
    """The visitor's hub roles, sorted; worked out only where a template shows them."""

    def sorted_roles() -> list[str]:
        roles = getattr(request, "hub_roles", None)
        if roles is None:
            roles = principal_hub_roles(principal=request.user) if hasattr(request, "user") else frozenset()
        return sorted(roles)

    return {"hub_roles": sorted_roles}

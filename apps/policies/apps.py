from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    """Roles, role mappings, applications, gateways, routes, access rules, snapshots and decisions."""

    name = "apps.policies"
    label = "policies"

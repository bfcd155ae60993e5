"""Reads for browser sign-in: who a person is at the gateways, and the policy a gateway runs."""

from apps.edge.models import PersonLink
from apps.gateways.selectors import deployment_live
from apps.identities.models import Identity
from apps.policies.models import Gateway
from apps.policies.selectors import compiled_policy, snapshot_newest
from apps.policies.snapshot import CompiledPolicy


def person_identity(*, user) -> Identity | None:
    """The identity ``user`` is linked to, if any."""
    link = PersonLink.objects.filter(user=user).select_related("identity__source").first()
    return link.identity if link else None


def sign_in_policy(*, gateway: Gateway) -> CompiledPolicy | None:
    """The policy a sign-in is judged on: the one the gateway runs (its live deployment's), so that
    policyhub never sends a browser back to a page the gateway would refuse it; before its first
    deployment, the newest snapshot."""
    live = deployment_live(gateway=gateway)
    snapshot = live.snapshot if live else snapshot_newest()
    return compiled_policy(snapshot=snapshot) if snapshot else None

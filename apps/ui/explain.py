"""Reads for the explain page: one access check (``apps.policies.checks.access_check``, what
POST /api/v1/decisions/check answers) with the chain behind it: the identity's source record, its
groups, the role mappings that gave its roles, the roles, the rule that decided (or every missing
condition), the route, and the config lines that enforce the route where a deployment is live."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q

from apps.gateways.explain import RouteEnforcement, route_enforcement
from apps.gateways.outcomes import expected_status
from apps.identities.models import Group, Identity
from apps.policies.checks import AccessCheck, access_check
from apps.policies.models import PolicySnapshot, RoleMapping
from apps.policies.selectors import compiled_policy
from apps.policies.snapshot import RuleView

SUGGESTIONS = 10


def identity_suggestions(*, query: str, limit: int = SUGGESTIONS) -> list[Identity]:
    """Identities whose username, e-mail, display name or subject holds ``query`` (2 characters at least)."""
    query = query.strip()
    if len(query) < 2:
        return []
    slug, colon, external_id = query.partition(":")
    matches = Q(username__icontains=query) | Q(email__icontains=query) | Q(display_name__icontains=query)
    if colon:
        matches |= Q(source__slug=slug, external_id__startswith=external_id)
    return list(Identity.objects.filter(matches).select_related("source").order_by("username", "source__slug")[:limit])


def identity_named(*, text: str) -> Identity:
    """The one identity ``text`` names exactly: its subject ('<source>:<external id>'), username or
    e-mail (any case); a ValidationError naming the candidates when several do, or when none does."""
    text = text.strip()
    slug, colon, external_id = text.partition(":")
    named = Q(username=text) | Q(email__iexact=text)
    if colon:
        named |= Q(source__slug=slug, external_id=external_id)
    found = list(Identity.objects.filter(named).select_related("source").order_by("source__slug", "username")[:4])
    if not found:
        raise ValidationError(f"No identity has the username, e-mail or subject {text!r}.", code="not_found")
    if len(found) > 1:
        subjects = ", ".join(identity.subject for identity in found[:3]) + (", …" if len(found) > 3 else "")
        raise ValidationError(f"Several identities match ({subjects}): give the subject.", code="ambiguous")
    return found[0]


@dataclass(frozen=True)
class GrantLink:
    role: str
    because: str  # as the grant describes its mapping: 'group Platform Admins'
    mapping: RoleMapping | None  # None: deleted since the check read it
    decisive: bool  # the deciding rule names this role


@dataclass(frozen=True)
class Explanation:
    check: AccessCheck
    status: int  # what the gateway answers (apps/gateways/outcomes.py)
    identity: Identity | None  # with its source; None: an anonymous request
    in_snapshot: bool  # the snapshot holds the identity as active (only then has it roles)
    groups: list[tuple[Group, bool]]  # each of its groups, and whether a mapping through it gave a role
    grants: list[GrantLink]
    enforcement: RouteEnforcement | None  # None: no route was matched

    @property
    def decision(self):
        return self.check.decision

    @property
    def roles(self) -> list[tuple[str, bool]]:
        """The identity's roles in the snapshot, each with whether the deciding rule names it."""
        rule_roles = self.decision.rule.roles if self.decision.rule else frozenset()
        return [(role, role in rule_roles) for role in sorted(self.decision.roles)]

    @property
    def rule_roles(self) -> list[str]:
        return sorted(self.decision.rule.roles) if self.decision.rule else []

    @property
    def route_rules(self) -> list[tuple[RuleView, list[str], bool]]:
        """The route's rules in evaluation order (deny rules, then allow rules): each with its roles
        sorted, and whether it decided."""
        route, decided = self.decision.route, self.decision.rule
        if route is None:
            return []
        return [(rule, sorted(rule.roles), rule == decided) for rule in route.deny_rules + route.allow_rules]

    @property
    def route_methods(self) -> list[str]:
        return sorted(self.decision.route.methods) if self.decision.route else []


def decision_explain(
    *,
    identity: Identity | None,
    method: str,
    host: str,
    path: str,
    client_ip: str | None,
    gateway: str | None,
    snapshot: PolicySnapshot,
) -> Explanation:
    """Judge the request as the API does (a ValidationError when ``gateway`` is not in ``snapshot``)
    and gather the chain behind the decision."""
    check = access_check(
        identity={"identity_id": identity.pk} if identity else None,
        method=method,
        host=host,
        path=path,
        client_ip=client_ip,
        gateway=gateway,
        snapshot=snapshot,
    )
    decision = check.decision
    decisive = decision.rule.roles & decision.roles if decision.rule else frozenset()
    mappings = RoleMapping.objects.select_related("role", "group", "identity", "source").in_bulk(
        {grant.mapping_id for grant in check.grants}
    )
    grants = [
        GrantLink(grant.role, grant.because, mappings.get(grant.mapping_id), grant.role in decisive)
        for grant in check.grants
    ]
    granting_groups = {link.mapping.group_id for link in grants if link.mapping and link.mapping.group_id}
    groups = []
    if identity is not None:
        member_of = Group.objects.filter(memberships__identity=identity).order_by("name")
        groups = [(group, group.pk in granting_groups) for group in member_of]
    return Explanation(
        check=check,
        status=expected_status(decision),
        identity=identity,
        in_snapshot=identity is not None and identity.subject in compiled_policy(snapshot=snapshot).identity_roles,
        groups=groups,
        grants=grants,
        enforcement=route_enforcement(gateway_name=decision.route.gateway, route_key=decision.route.key)
        if decision.route
        else None,
    )

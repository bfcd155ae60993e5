"""Writes for roles, mappings, applications, gateways, routes, access rules and snapshots.

Each write validates at the boundary (``full_clean`` normalizes hosts, paths, URLs, CIDRs,
methods), saves, and records its audit event in one transaction: nothing is half-saved. A mapping
edited or deleted revokes the tokens of whoever it takes a role from.
"""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.canonical import canonical_json
from apps.core.db import read_consistently
from apps.core.services import model_create, model_delete, model_update
from apps.gateways.revocations import access_losses_revoked
from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.choices import Effect
from apps.policies.models import AccessRule, Application, Gateway, PolicySnapshot, Role, RoleMapping, Route
from apps.policies.snapshot import content_sha256, snapshot_content


def role_create(*, actor: Actor, slug: str, name: str = "", description: str = "") -> Role:
    return model_create(model=Role, actor=actor, data={"slug": slug, "name": name, "description": description})


def role_update(*, role: Role, actor: Actor, data: dict) -> Role:
    return model_update(instance=role, actor=actor, data=data)[0]


@transaction.atomic
def role_delete(*, role: Role, actor: Actor) -> None:
    """Refused while rules list the role: dropping it from a rule would silently change who gets in."""
    rules = list(role.access_rules.select_related("route"))
    if rules:
        raise ProtectedError(f"role {role} is listed by access rules", set(rules))
    model_delete(instance=role, actor=actor)


def role_mapping_create(
    *,
    actor: Actor,
    role: Role,
    match_kind: str,
    group: Group | None = None,
    identity: Identity | None = None,
    claim_name: str = "",
    claim_value: str = "",
    source: IdentitySource | None = None,
    enabled: bool = True,
    description: str = "",
) -> RoleMapping:
    return model_create(
        model=RoleMapping,
        actor=actor,
        data={
            "role": role,
            "match_kind": match_kind,
            "group": group,
            "identity": identity,
            "claim_name": claim_name,
            "claim_value": claim_value,
            "source": source,
            "enabled": enabled,
            "description": description,
        },
    )


@transaction.atomic
def role_mapping_update(*, mapping: RoleMapping, actor: Actor, data: dict) -> RoleMapping:
    """Whoever loses a role by it has the tokens it holds revoked (apps/gateways/revocations.py)."""
    with access_losses_revoked(actor=actor):
        return model_update(instance=mapping, actor=actor, data=data)[0]


@transaction.atomic
def role_mapping_delete(*, mapping: RoleMapping, actor: Actor) -> None:
    """Whoever loses a role by it has the tokens it holds revoked (apps/gateways/revocations.py)."""
    with access_losses_revoked(actor=actor):
        model_delete(instance=mapping, actor=actor)


def application_create(
    *, actor: Actor, name: str, slug: str, backstage_entity_ref: str = "", owner: str = "", description: str = ""
) -> Application:
    return model_create(
        model=Application,
        actor=actor,
        data={
            "name": name,
            "slug": slug,
            "backstage_entity_ref": backstage_entity_ref,
            "owner": owner,
            "description": description,
        },
    )


def application_update(*, application: Application, actor: Actor, data: dict) -> Application:
    return model_update(instance=application, actor=actor, data=data)[0]


def application_delete(*, application: Application, actor: Actor) -> None:
    model_delete(instance=application, actor=actor)


def gateway_create(
    *,
    actor: Actor,
    name: str,
    kind: str,
    listen_address: str,
    public_hostnames: Iterable[str],
    edge_token_algorithm: str = "",
    deploy_directory: str = "",
    description: str = "",
) -> Gateway:
    return model_create(
        model=Gateway,
        actor=actor,
        data={
            "name": name,
            "kind": kind,
            "listen_address": listen_address,
            "public_hostnames": list(public_hostnames),
            "edge_token_algorithm": edge_token_algorithm,
            "deploy_directory": deploy_directory,
            "description": description,
        },
    )


def gateway_update(*, gateway: Gateway, actor: Actor, data: dict) -> Gateway:
    return model_update(instance=gateway, actor=actor, data=data)[0]


def gateway_delete(*, gateway: Gateway, actor: Actor) -> None:
    """Refused (PROTECT) while routes, keys, certificates or deployments refer to the gateway."""
    model_delete(instance=gateway, actor=actor)


def route_create(
    *,
    actor: Actor,
    gateway: Gateway,
    application: Application,
    host: str,
    upstream_url: str,
    path_prefix: str = "/",
    methods: Iterable[str] = (),
    signed_links: bool = False,
    description: str = "",
) -> Route:
    return model_create(
        model=Route,
        actor=actor,
        data={
            "gateway": gateway,
            "application": application,
            "host": host,
            "path_prefix": path_prefix,
            "methods": list(methods),
            "upstream_url": upstream_url,
            "signed_links": signed_links,
            "description": description,
        },
    )


def route_update(*, route: Route, actor: Actor, data: dict) -> Route:
    return model_update(instance=route, actor=actor, data=data)[0]


def route_delete(*, route: Route, actor: Actor) -> None:
    model_delete(instance=route, actor=actor)


_RULE_FIELDS = (
    "route",
    "auth_mode",
    "effect",
    "allowed_cidrs",
    "rate_limit_per_minute",
    "identity_headers",
    "cache_seconds",
    "description",
)


def _validated_rule(rule: AccessRule, roles: list[Role]) -> None:
    """Field validation and the many-to-many roles check, reported together."""
    errors: dict[str, list] = {}
    for check in (rule.full_clean, lambda: rule.clean_roles(roles)):
        try:
            check()
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors.setdefault(field, []).extend(messages)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def access_rule_create(
    *,
    actor: Actor,
    route: Route,
    auth_mode: str,
    effect: str = Effect.ALLOW,
    roles: Iterable[Role] = (),
    allowed_cidrs: Iterable[str] = (),
    rate_limit_per_minute: int | None = None,
    identity_headers: Iterable[str] = (),
    cache_seconds: int = 0,
    description: str = "",
) -> AccessRule:
    roles = list(roles)
    rule = AccessRule(
        route=route,
        auth_mode=auth_mode,
        effect=effect,
        allowed_cidrs=list(allowed_cidrs),
        rate_limit_per_minute=rate_limit_per_minute,
        identity_headers=list(identity_headers),
        cache_seconds=cache_seconds,
        description=description,
    )
    _validated_rule(rule, roles)
    data = {field: getattr(rule, field) for field in _RULE_FIELDS}
    return model_create(model=AccessRule, actor=actor, data=data, m2m={"roles": roles})


@transaction.atomic
def access_rule_update(
    *, rule: AccessRule, actor: Actor, data: dict, roles: Iterable[Role] | None = None
) -> AccessRule:
    new_roles = list(rule.roles.all()) if roles is None else list(roles)
    candidate = AccessRule(**{f.attname: getattr(rule, f.attname) for f in rule._meta.concrete_fields})
    candidate._state.adding = False  # the stored rule itself: its own id is not a uniqueness clash
    for name, value in data.items():
        setattr(candidate, name, value)
    _validated_rule(candidate, new_roles)
    m2m = None if roles is None else {"roles": new_roles}
    return model_update(instance=rule, actor=actor, data=data, m2m=m2m)[0]


def access_rule_delete(*, rule: AccessRule, actor: Actor) -> None:
    model_delete(instance=rule, actor=actor)


def snapshot_build(*, actor: Actor) -> PolicySnapshot:
    """Capture the effective policy now. The same policy always yields the same (reused) snapshot."""
    return snapshot_build_reporting(actor=actor)[0]


def snapshot_build_reporting(*, actor: Actor) -> tuple[PolicySnapshot, bool]:
    """``snapshot_build``, also saying whether the snapshot is new (False: the policy is unchanged)."""
    content = read_consistently(snapshot_content)
    text = canonical_json(content)
    sha256 = content_sha256(text)
    with transaction.atomic():
        existing = PolicySnapshot.objects.filter(sha256=sha256).defer("content").first()
        if existing is not None:
            existing.content = text  # what the row holds (same sha256): not read back from the database
            return existing, False
        return _snapshot_store(actor=actor, sha256=sha256, text=text, content=content), True


def _snapshot_store(*, actor: Actor, sha256: str, text: str, content: dict) -> PolicySnapshot:
    snapshot = PolicySnapshot.objects.create(
        sha256=sha256,
        content=text,
        created_by=str(actor),
        route_count=len(content["routes"]),
        identity_count=len(content["identities"]),
    )
    audit_record(
        actor=actor,
        action="snapshot.build",
        object_type="policies.policysnapshot",
        object_id=snapshot.pk,
        after={"sha256": sha256, "routes": snapshot.route_count, "identities": snapshot.identity_count},
    )
    return snapshot

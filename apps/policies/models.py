"""Policy data: who gets which role, and which roles may reach which route through which gateway."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from apps.core.fields import (
    CIDRListField,
    DeployDirectoryField,
    EntityRefField,
    HostnameField,
    HostnameListField,
    ListenAddressField,
    MethodListField,
    NormalizedListField,
    PathPrefixField,
    SlugField,
    UpstreamURLField,
)
from apps.credentials.choices import SigningAlgorithm
from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.choices import AuthMode, Effect, GatewayKind, IdentityHeader, MatchKind


class Role(models.Model):
    """A policyhub role; identities receive roles only through role mappings."""

    slug = SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


def describe_match(match_kind: str, *, group: str, identity: str, claim_name: str, claim_value: str) -> str:
    """What a mapping matches, as grants explain a role: 'group <name>', 'identity <username>' or
    'claim <name>=<value>' (also for mappings read without their model, ``roles.role_grants_for``)."""
    if match_kind == MatchKind.GROUP:
        return f"group {group}"
    if match_kind == MatchKind.IDENTITY:
        return f"identity {identity}"
    return f"claim {claim_name}={claim_value}"


class RoleMapping(models.Model):
    """Grants a role to the members of a group, to one identity, or to identities with a claim value."""

    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="mappings")
    match_kind = models.CharField(max_length=16, choices=MatchKind.choices)
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="role_mappings")
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.CASCADE, related_name="role_mappings"
    )
    claim_name = models.CharField(max_length=100, blank=True)
    claim_value = models.CharField(max_length=200, blank=True)
    source = models.ForeignKey(
        IdentitySource,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="role_mappings",
        help_text="Only identities from this source match; empty: any source.",
    )
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["role__slug", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(match_kind=MatchKind.GROUP, group__isnull=False, identity__isnull=True, claim_name="")
                    | Q(match_kind=MatchKind.IDENTITY, group__isnull=True, identity__isnull=False, claim_name="")
                    | (Q(match_kind=MatchKind.CLAIM, group__isnull=True, identity__isnull=True) & ~Q(claim_name=""))
                ),
                name="role_mapping_match_fields_fit_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.describe_match()} → {self.role}"

    def describe_match(self) -> str:
        return describe_match(
            self.match_kind,
            group=self.group.name if self.group_id else "",
            identity=self.identity.username if self.identity_id else "",
            claim_name=self.claim_name,
            claim_value=self.claim_value,
        )

    def clean(self):
        errors = {}
        required = {MatchKind.GROUP: "group", MatchKind.IDENTITY: "identity", MatchKind.CLAIM: "claim_name"}
        for kind, field in required.items():
            value = getattr(self, f"{field}_id", None) if field != "claim_name" else self.claim_name
            if self.match_kind == kind and not value:
                errors[field] = f"A {MatchKind(kind).label.lower()} mapping needs {field.replace('_', ' ')}."
            elif self.match_kind != kind and value:
                errors[field] = f"Only {MatchKind(kind).label.lower()} mappings set {field.replace('_', ' ')}."
        if self.match_kind != MatchKind.CLAIM and self.claim_value:
            errors["claim_value"] = "Only claim mappings set a claim value."
        if self.source_id and self.group_id and self.group.source_id != self.source_id:
            errors["group"] = "The group belongs to another source than the mapping's scope."
        if self.source_id and self.identity_id and self.identity.source_id != self.source_id:
            errors["identity"] = "The identity belongs to another source than the mapping's scope."
        if errors:
            raise ValidationError(errors)


class Application(models.Model):
    """An internal tool reached through routes, optionally linked to its Backstage catalog entity."""

    name = models.CharField(max_length=100, unique=True)
    slug = SlugField(max_length=63, unique=True)
    backstage_entity_ref = EntityRefField(
        max_length=200,
        blank=True,
        help_text="[kind:][namespace/]name, stored as kind:namespace/name (default kind component, namespace default)",
    )
    owner = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["backstage_entity_ref"],
                condition=~Q(backstage_entity_ref=""),
                name="application_entity_ref_unique",
                violation_error_message="Another application is already bound to this Backstage entity.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        # as a field error (the constraint alone would report it against no field)
        ref = self.backstage_entity_ref
        if ref and Application.objects.exclude(pk=self.pk).filter(backstage_entity_ref=ref).exists():
            raise ValidationError({"backstage_entity_ref": f"Another application is already bound to {ref}."})


# where README "Deploying" has HAProxy's master socket, and the longest path HAProxy 2.6 binds there
HAPROXY_MASTER_SOCKET_PATH = "/run/haproxy-master.sock"
HAPROXY_SOCKET_PATH_MAX = 97
HAPROXY_DEPLOY_DIRECTORY_MAX = HAPROXY_SOCKET_PATH_MAX - len(HAPROXY_MASTER_SOCKET_PATH)


class Gateway(models.Model):
    """A reverse proxy (HAProxy or lighttpd) that enforces the policy for its routes."""

    name = SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=16, choices=GatewayKind.choices)
    listen_address = ListenAddressField(max_length=64, help_text="ip:port, e.g. 0.0.0.0:443 or [::]:443")
    public_hostnames = HostnameListField(help_text="Host names this gateway serves; routes must use them.")
    edge_token_algorithm = models.CharField(
        max_length=8,
        choices=SigningAlgorithm.choices,
        blank=True,
        help_text="Empty: the recommended one for the proxy (RS256 for HAProxy, HS256 for lighttpd).",
    )
    deploy_directory = DeployDirectoryField(
        max_length=500,
        blank=True,
        help_text="Absolute directory on this host that policyhub deploys into (releases/, current, run/; "
        "see the README). Empty: not deployable.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        # HAProxy refuses to start with a master socket path longer than a Unix socket address holds
        # ("socket path ... too long (max 97)"), and a deploy only finds out when it cannot reload.
        if self.kind == GatewayKind.HAPROXY and len(self.deploy_directory) > HAPROXY_DEPLOY_DIRECTORY_MAX:
            message = (
                f"HAProxy's master socket <deploy directory>{HAPROXY_MASTER_SOCKET_PATH} must fit in "
                f"{HAPROXY_SOCKET_PATH_MAX} characters: choose a deploy directory of at most "
                f"{HAPROXY_DEPLOY_DIRECTORY_MAX} (this one has {len(self.deploy_directory)})."
            )
            raise ValidationError({"deploy_directory": ValidationError(message, code="directory_too_long")})

    def serves(self, host: str) -> bool:
        """True if ``host`` (exact or wildcard route host) is one of this gateway's public host names."""
        return host in self.public_hostnames or any(
            host.endswith(f".{name[2:]}") for name in self.public_hostnames if name.startswith("*.")
        )


def _normalize_identity_header(value: str) -> str:
    if value not in IdentityHeader.values:
        raise ValidationError(
            "Identity header %(value)s is not one of %(allowed)s.",
            code="identity_header",
            params={"value": repr(value), "allowed": ", ".join(IdentityHeader.values)},
        )
    return value


class IdentityHeaderListField(NormalizedListField):
    item_normalizer = staticmethod(_normalize_identity_header)
    item_label = "identity headers"


class Route(models.Model):
    """(gateway, host, path prefix, methods) → upstream. Hosts are exact or '*.' wildcards."""

    gateway = models.ForeignKey(Gateway, on_delete=models.PROTECT, related_name="routes")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="routes")
    host = HostnameField(allow_wildcard=True)
    path_prefix = PathPrefixField(max_length=500, default="/")
    methods = MethodListField(help_text="Empty: every method.")
    upstream_url = UpstreamURLField(max_length=300)
    signed_links = models.BooleanField(
        default=False,
        help_text="Serves artifacts: a GET or HEAD carrying a valid time-limited signed link, issued by "
        "policyhub to an identity an allow rule admits, is admitted without an edge token. The rule's "
        "networks still apply when the link is used.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["host", "path_prefix"]
        constraints = [
            # One route per (host, prefix) across all gateways keeps every decision unambiguous.
            models.UniqueConstraint(fields=["host", "path_prefix"], name="route_host_path_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.host}{self.path_prefix}"

    def clean(self):
        if self.gateway_id and self.host and self.gateway.public_hostnames and not self.gateway.serves(self.host):
            raise ValidationError(
                {
                    "host": f"Gateway {self.gateway} does not serve {self.host}; "
                    f"its public host names are {', '.join(self.gateway.public_hostnames)}."
                }
            )


class AccessRule(models.Model):
    """Who may use a route and how. Deny rules win over allow rules."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="rules")
    effect = models.CharField(max_length=8, choices=Effect.choices, default=Effect.ALLOW)
    auth_mode = models.CharField(max_length=16, choices=AuthMode.choices)
    roles = models.ManyToManyField(Role, blank=True, related_name="access_rules", help_text="Any one suffices.")
    allowed_cidrs = CIDRListField(
        help_text="Allow rules: the client must be in one of these networks. "
        "Deny rules: clients in these networks are denied. Empty: any network."
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Requests per identity per minute."
    )
    identity_headers = IdentityHeaderListField(help_text="Identity facts forwarded to the upstream.")
    cache_seconds = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(86_400)])
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["route_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rate_limit_per_minute__isnull=True) | Q(rate_limit_per_minute__gte=1),
                name="access_rule_rate_limit_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.effect} {self.auth_mode} on {self.route}"

    def clean(self):
        errors = {}
        if self.auth_mode == AuthMode.PUBLIC:
            if self.rate_limit_per_minute:
                errors["rate_limit_per_minute"] = "Public rules have no identity to rate-limit."
            if self.identity_headers:
                errors["identity_headers"] = "Public rules have no identity to forward."
        if self.effect == Effect.DENY:
            for field in ("rate_limit_per_minute", "identity_headers", "cache_seconds"):
                if getattr(self, field):
                    errors[field] = "Deny rules only deny; they cannot set upstream behaviour."
        if errors:
            raise ValidationError(errors)

    def clean_roles(self, roles) -> None:
        """Validate the many-to-many roles against the mode (called by services before saving them)."""
        if self.auth_mode == AuthMode.ROLES and not roles:
            raise ValidationError({"roles": "A rule in 'roles' mode needs at least one role."})
        if self.auth_mode != AuthMode.ROLES and roles:
            raise ValidationError({"roles": "Only rules in 'roles' mode list roles."})


class PolicySnapshotQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ValidationError("Policy snapshots are immutable.")


class PolicySnapshot(models.Model):
    """The whole effective policy at one instant: canonical JSON text and its sha256."""

    sha256 = models.CharField(max_length=64, unique=True)
    content = models.TextField(help_text="Canonical JSON (sorted keys, no whitespace).")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200)
    route_count = models.PositiveIntegerField()
    identity_count = models.PositiveIntegerField()

    objects = PolicySnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        # every access check asks for the newest snapshot
        indexes = [models.Index(fields=["-created_at", "-id"], name="snapshot_newest_first")]

    def __str__(self) -> str:
        return f"snapshot {self.sha256[:12]}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Policy snapshots are immutable.")
        super().save(*args, **kwargs)

"""Policy objects as the API shows and parses them. Parsing only: the models and services validate
(normalized hosts, paths, CIDRs, methods; how match kinds and rule modes combine), so the API and
the admin refuse exactly the same input. Related objects go by their natural keys (slug, name)."""

import json

from rest_framework import serializers

from apps.credentials.choices import SigningAlgorithm
from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.choices import AuthMode, Effect, GatewayKind, IdentityHeader, MatchKind
from apps.policies.models import Application, Gateway, Role, Route


class RoleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    slug = serializers.CharField(max_length=63)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class RoleMappingSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    role = serializers.SlugRelatedField(slug_field="slug", queryset=Role.objects.all())
    match_kind = serializers.ChoiceField(choices=MatchKind.choices)
    group = serializers.PrimaryKeyRelatedField(
        queryset=Group.objects.all(), required=False, allow_null=True, help_text="Group id (group mappings)."
    )
    identity = serializers.PrimaryKeyRelatedField(
        queryset=Identity.objects.all(), required=False, allow_null=True, help_text="Identity id (identity mappings)."
    )
    claim_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    claim_value = serializers.CharField(max_length=200, required=False, allow_blank=True)
    source = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=IdentitySource.objects.all(),
        required=False,
        allow_null=True,
        help_text="Only identities from this source (slug) match; null: any source.",
    )
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class ApplicationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=63)
    backstage_entity_ref = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="[kind:][namespace/]name"
    )
    owner = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class GatewaySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=63)
    kind = serializers.ChoiceField(choices=GatewayKind.choices)
    listen_address = serializers.CharField(max_length=64, help_text="ip:port, e.g. 0.0.0.0:443 or [::]:443")
    public_hostnames = serializers.ListField(
        child=serializers.CharField(), help_text="Host names this gateway serves; routes must use them."
    )
    edge_token_algorithm = serializers.ChoiceField(
        choices=SigningAlgorithm.choices,
        required=False,
        allow_blank=True,
        help_text="Empty: the recommended one for the proxy.",
    )
    deploy_directory = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Empty: not deployable."
    )
    description = serializers.CharField(required=False, allow_blank=True)


class RouteSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    gateway = serializers.SlugRelatedField(slug_field="name", queryset=Gateway.objects.all(), help_text="Gateway name.")
    application = serializers.SlugRelatedField(
        slug_field="slug", queryset=Application.objects.all(), help_text="Application slug."
    )
    host = serializers.CharField(max_length=253, help_text="Exact host or '*.' wildcard.")
    path_prefix = serializers.CharField(max_length=500, required=False)
    methods = serializers.ListField(child=serializers.CharField(), required=False, help_text="Empty: every method.")
    upstream_url = serializers.CharField(max_length=300)
    signed_links = serializers.BooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class AccessRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    route = serializers.PrimaryKeyRelatedField(queryset=Route.objects.all(), help_text="Route id.")
    effect = serializers.ChoiceField(choices=Effect.choices, required=False)
    auth_mode = serializers.ChoiceField(choices=AuthMode.choices)
    roles = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Role.objects.all(),
        many=True,
        required=False,
        help_text="Role slugs; any one suffices.",
    )
    allowed_cidrs = serializers.ListField(child=serializers.CharField(), required=False)
    rate_limit_per_minute = serializers.IntegerField(required=False, allow_null=True)
    identity_headers = serializers.ListField(
        child=serializers.ChoiceField(choices=IdentityHeader.choices), required=False
    )
    cache_seconds = serializers.IntegerField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)


class PolicySnapshotSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    sha256 = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    created_by = serializers.CharField(read_only=True)
    route_count = serializers.IntegerField(read_only=True)
    identity_count = serializers.IntegerField(read_only=True)


class PolicySnapshotDetailSerializer(PolicySnapshotSerializer):
    content = serializers.JSONField(read_only=True, help_text="The whole effective policy (canonical JSON, parsed).")

    def to_representation(self, instance) -> dict:
        # stored as canonical text; shown parsed, so clients need not decode JSON inside JSON
        return {**super().to_representation(instance), "content": json.loads(instance.content)}

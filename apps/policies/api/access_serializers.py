"""Access checks and access listings as the API parses and shows them (apps/policies/checks.py)."""

from urllib.parse import urlsplit

from rest_framework import serializers

from apps.core.validators import HTTP_METHODS


class SnapshotRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sha256 = serializers.CharField()
    created_at = serializers.DateTimeField()


class IdentityRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    subject = serializers.CharField(help_text="'<source slug>:<external id>', as edge tokens and decisions name it.")
    source = serializers.CharField(source="source.slug")
    username = serializers.CharField()
    email = serializers.CharField()
    display_name = serializers.CharField()
    active = serializers.BooleanField()


class RuleViewSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Stable content key of the rule within the snapshot.")
    effect = serializers.CharField()
    auth_mode = serializers.CharField()
    roles = serializers.SerializerMethodField()
    allowed_cidrs = serializers.ListField(child=serializers.CharField(), source="cidrs")
    rate_limit_per_minute = serializers.IntegerField(allow_null=True)
    identity_headers = serializers.ListField(child=serializers.CharField())
    cache_seconds = serializers.IntegerField()

    def get_roles(self, rule) -> list[str]:
        return sorted(rule.roles)


class RouteViewSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="'<gateway>/<host><path prefix>'")
    gateway = serializers.CharField()
    application = serializers.CharField(help_text="Application slug.")
    host = serializers.CharField()
    path_prefix = serializers.CharField()
    methods = serializers.SerializerMethodField(help_text="Empty: every method.")

    def get_methods(self, route) -> list[str]:
        return sorted(route.methods)


class RouteWithRulesSerializer(RouteViewSerializer):
    signed_links = serializers.BooleanField()
    deny_rules = RuleViewSerializer(many=True)
    allow_rules = RuleViewSerializer(many=True, help_text="In evaluation order.")


class GrantSerializer(serializers.Serializer):
    role = serializers.CharField()
    mapping_id = serializers.IntegerField()
    because = serializers.CharField(help_text="e.g. 'group platform-admins', 'claim department=Data'.")


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="allowed, path_not_canonical, no_route, method_not_allowed, denied_by_rule, no_allow_rule, "
        "authentication_required, identity_not_active, missing_role, network_not_allowed"
    )
    message = serializers.CharField()


class AccessCheckRequestSerializer(serializers.Serializer):
    identity_id = serializers.IntegerField(required=False, min_value=1)
    username = serializers.CharField(required=False, max_length=200)
    email = serializers.CharField(required=False, max_length=254)
    source = serializers.CharField(
        required=False, max_length=63, help_text="Identity source slug: narrows username/e-mail lookups."
    )
    method = serializers.ChoiceField(choices=HTTP_METHODS, default="GET")
    url = serializers.CharField(required=False, max_length=2000, help_text="http(s)://host[:port]/path[?query]")
    host = serializers.CharField(required=False, max_length=253, help_text="With 'path': instead of 'url'.")
    path = serializers.CharField(required=False, max_length=2000, help_text="With 'host'; default '/'.")
    client_ip = serializers.IPAddressField(required=False, allow_null=True, help_text="Omitted: unknown.")
    gateway = serializers.CharField(required=False, max_length=63, help_text="Judge as this gateway would.")
    snapshot = serializers.RegexField(
        r"^[0-9a-f]{64}$", required=False, help_text="sha256 of the snapshot to judge by; default the newest."
    )

    def validate(self, attrs: dict) -> dict:
        named = [field for field in ("identity_id", "username", "email") if field in attrs]
        if len(named) > 1:
            raise serializers.ValidationError({named[1]: f"name the identity once: {' or '.join(named)}, not both"})
        if "url" in attrs and ("host" in attrs or "path" in attrs):
            raise serializers.ValidationError({"url": "give either url, or host and path"})
        if "url" in attrs:
            attrs["host"], attrs["path"] = _host_and_path(attrs.pop("url"))
        elif "host" not in attrs:
            raise serializers.ValidationError({"url": "give the request's url, or its host and path"})
        attrs.setdefault("path", "/")
        if not attrs["path"].startswith("/"):
            raise serializers.ValidationError({"path": "a path starts with '/'"})
        return attrs


def _host_and_path(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as error:
        raise serializers.ValidationError({"url": f"not a URL: {error}"}) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise serializers.ValidationError({"url": "expected an absolute http(s) URL, e.g. https://host/path"})
    path = parts.path or "/"
    return parts.netloc.rpartition("@")[2], f"{path}?{parts.query}" if parts.query else path


class AccessCheckSerializer(serializers.Serializer):
    allowed = serializers.BooleanField(source="decision.allowed")
    snapshot = SnapshotRefSerializer()
    identity = IdentityRefSerializer(allow_null=True, help_text="Null: the request was judged as anonymous.")
    route = RouteViewSerializer(source="decision.route", allow_null=True, help_text="The route the request matched.")
    rule = RuleViewSerializer(
        source="decision.rule", allow_null=True, help_text="The allow rule that admitted, or the deny rule refusing."
    )
    roles = serializers.SerializerMethodField(help_text="The identity's effective roles in the snapshot.")
    grants = GrantSerializer(many=True, help_text="Which role mapping gave each role.")
    reasons = ReasonSerializer(
        source="decision.reasons", many=True, help_text="Why: for a deny, every condition that was missing."
    )

    def get_roles(self, check) -> list[str]:
        return sorted(check.decision.roles)


class ReachSerializer(serializers.Serializer):
    route = RouteViewSerializer()
    rules = serializers.SerializerMethodField(help_text="Keys of the allow rules that admit the identity.")
    roles = serializers.SerializerMethodField(help_text="The identity's roles those rules name.")
    only_from = serializers.ListField(child=serializers.CharField(), help_text="CIDRs; empty: from anywhere.")
    except_from = serializers.ListField(child=serializers.CharField(), help_text="CIDRs a deny rule refuses it from.")

    def get_rules(self, reach) -> list[str]:
        return [rule.key for rule in reach.rules]

    def get_roles(self, reach) -> list[str]:
        return sorted(reach.roles)


class MappingRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    because = serializers.CharField(source="describe_match")
    source = serializers.CharField(source="source.slug", allow_null=True, default=None)


class RoleMappingsSerializer(serializers.Serializer):
    role = serializers.CharField()
    mappings = MappingRefSerializer(many=True)


class RouteAudienceSerializer(serializers.Serializer):
    route = RouteWithRulesSerializer(source="audience.route")
    open_to = serializers.ChoiceField(choices=["public", "authenticated", "roles", "nobody"], source="audience.open_to")
    roles = RoleMappingsSerializer(many=True, help_text="For 'roles': each role that admits, and its mappings.")
    identity_count = serializers.IntegerField(help_text="Active identities that reach the route.")


class IdentityAccessSerializer(serializers.Serializer):
    subject = serializers.CharField()
    identity = IdentityRefSerializer(allow_null=True, help_text="Null: deleted since the snapshot was built.")
    reaches = ReachSerializer(many=True)
    grants = GrantSerializer(many=True)

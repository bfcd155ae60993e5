"""Identity sources, identities, groups and sync runs as the API reads and writes them.

A source's ``credential`` is write-only: it is checked against what the source's connector reads,
stored encrypted, and never answered, not even in an error (the connectors' messages name the field
at fault, never a value).
"""

import json
from itertools import groupby

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.crypto import Secret
from apps.core.redaction import redact
from apps.identities.choices import SourceKind
from apps.identities.connectors.base import PermanentError
from apps.identities.connectors.registry import credential_check
from apps.identities.models import Group, Identity, IdentitySource, SyncRun
from apps.identities.selectors import MEMBERS_SHOWN
from apps.policies.roles import role_grants

NAMESPACE = "api:identities-api"
CREDENTIAL_SHAPES = {
    SourceKind.OKTA: '{"token": …} or {"client_id": …, "private_key": "<PEM RSA>", "key_id"?: …, "scopes"?: …}',
    SourceKind.SPACE: '{"token": …} or {"client_id": …, "client_secret": …}',
}


def _link(view_name: str, **options) -> serializers.HyperlinkedIdentityField:
    return serializers.HyperlinkedIdentityField(view_name=f"{NAMESPACE}:{view_name}", **options)


def _source_slug() -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(slug_field="slug", read_only=True, help_text="Slug of the identity source.")


class IdentitySourceSerializer(serializers.ModelSerializer):
    url = _link("identity-source-detail")
    credential = serializers.JSONField(
        write_only=True,
        required=False,
        help_text=(
            "Write-only, stored encrypted, never returned. A JSON object: Okta "
            f"{CREDENTIAL_SHAPES[SourceKind.OKTA]}; Space {CREDENTIAL_SHAPES[SourceKind.SPACE]}; local "
            "sources take none. Required when creating an Okta or Space source; omitted on update: unchanged."
        ),
    )
    has_credential = serializers.SerializerMethodField(help_text="Whether a credential is stored.")

    class Meta:
        model = IdentitySource
        fields = [
            "id",
            "url",
            "name",
            "slug",
            "kind",
            "base_url",
            "credential",
            "has_credential",
            "sync_interval_minutes",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_has_credential(self, source: IdentitySource) -> bool:
        return bool(source.credential)

    def validate(self, attrs: dict) -> dict:
        source = self.instance
        kind = attrs.get("kind", source.kind if source else None)
        if source is not None and kind != source.kind:
            raise serializers.ValidationError(
                {"kind": "A source's kind cannot change: create a new source instead."}, code="kind_immutable"
            )
        if "credential" in attrs:
            attrs["credential"] = _credential_text(kind, attrs["credential"])
        elif source is None and kind in CREDENTIAL_SHAPES:
            raise serializers.ValidationError(
                {"credential": f"{SourceKind(kind).label} sources need a credential: {CREDENTIAL_SHAPES[kind]}."},
                code="required",
            )
        return attrs


def _credential_text(kind: str, value) -> str:
    """The credential as stored (JSON text), once its connector could read it."""
    if kind not in CREDENTIAL_SHAPES:
        if value in ({}, None, ""):
            return ""
        raise serializers.ValidationError({"credential": f"{SourceKind(kind).label} sources take no credential."})
    if not isinstance(value, dict):
        shape = CREDENTIAL_SHAPES[kind]
        raise serializers.ValidationError({"credential": f"Must be a JSON object: {shape}."}, code="invalid")
    text = json.dumps(value)
    try:
        credential_check(kind=kind, credential=Secret(text))
    except PermanentError as error:  # its message names the field at fault, never a value
        reason = str(error)
        raise serializers.ValidationError(
            {"credential": f"{reason[:1].upper()}{reason[1:]}."}, code="invalid"
        ) from None
    return text


class IdentityGroupSerializer(serializers.ModelSerializer):
    url = _link("group-detail")

    class Meta:
        model = Group
        fields = ["id", "url", "external_id", "name"]


class IdentitySerializer(serializers.ModelSerializer):
    url = _link("identity-detail")
    source = _source_slug()
    subject = serializers.CharField(read_only=True, help_text="'<source slug>:<external id>': the edge tokens' sub.")

    class Meta:
        model = Identity
        fields = [
            "id",
            "url",
            "source",
            "external_id",
            "subject",
            "kind",
            "username",
            "email",
            "display_name",
            "active",
            "created_at",
            "updated_at",
        ]


class RoleGrantSerializer(serializers.Serializer):
    mapping = serializers.IntegerField(help_text="Id of the role mapping that grants the role.")
    because = serializers.CharField(help_text="What matched, e.g. 'group platform-admins', 'claim department=Data'.")


class EffectiveRoleSerializer(serializers.Serializer):
    role = serializers.CharField(help_text="Slug of the role.")
    granted_by = RoleGrantSerializer(many=True)


class IdentityDetailSerializer(IdentitySerializer):
    groups = IdentityGroupSerializer(many=True, read_only=True)
    roles = serializers.SerializerMethodField(
        help_text="Effective roles (none while inactive), each with the enabled mappings that grant it."
    )
    attributes = serializers.SerializerMethodField(help_text="Raw attributes from the source, secrets masked.")

    class Meta(IdentitySerializer.Meta):
        fields = [*IdentitySerializer.Meta.fields, "attributes", "groups", "roles"]

    @extend_schema_field(EffectiveRoleSerializer(many=True))
    def get_roles(self, identity: Identity) -> list[dict]:
        grants = role_grants(identity)  # ordered by role
        return [
            {"role": role, "granted_by": [{"mapping": g.mapping_id, "because": g.because} for g in same]}
            for role, same in groupby(grants, key=lambda grant: grant.role)
        ]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_attributes(self, identity: Identity) -> dict:
        return redact(identity.attributes)


class GroupSerializer(serializers.ModelSerializer):
    url = _link("group-detail")
    source = _source_slug()
    member_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Group
        fields = ["id", "url", "source", "external_id", "name", "description", "member_count"]


class GroupMemberSerializer(serializers.ModelSerializer):
    url = _link("identity-detail")

    class Meta:
        model = Identity
        fields = ["id", "url", "username", "display_name", "active"]


class GroupDetailSerializer(GroupSerializer):
    members = GroupMemberSerializer(
        many=True,
        read_only=True,
        source="members_shown",
        help_text=f"The first {MEMBERS_SHOWN} members by username; member_count says how many there are.",
    )
    members_url = serializers.SerializerMethodField(help_text="Every member, paginated: the identity list filtered.")

    class Meta(GroupSerializer.Meta):
        fields = [*GroupSerializer.Meta.fields, "members", "members_url"]

    @extend_schema_field(OpenApiTypes.URI)
    def get_members_url(self, group: Group) -> str:
        request = self.context["request"]
        return request.build_absolute_uri(f"{reverse(f'{NAMESPACE}:identity-list')}?group={group.pk}")


class SyncRunSerializer(serializers.ModelSerializer):
    url = _link("sync-run-detail")
    source = _source_slug()
    source_url = serializers.HyperlinkedRelatedField(
        source="source", view_name=f"{NAMESPACE}:identity-source-detail", read_only=True
    )

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "url",
            "source",
            "source_url",
            "state",
            "mode",
            "since",
            "trigger",
            "actor",
            "created",
            "updated",
            "deactivated",
            "unchanged",
            "counts",
            "progress",
            "timings",
            "messages",
            "started_at",
            "finished_at",
        ]


class SyncRequestSerializer(serializers.Serializer):
    full = serializers.BooleanField(
        default=False, help_text="Read everything, even where the source could give only the changes."
    )


class SyncAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Id of the sync run.")
    sync_run = serializers.URLField(help_text="The run: poll it for state, progress and messages (also: Location).")
    state = serializers.CharField(help_text="'queued', or 'running' when the request joined a sync under way.")

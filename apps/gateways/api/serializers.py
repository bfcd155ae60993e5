"""Deployments as the API shows them, and the deploy request it parses.

A deployment's ``proof`` is shown as its summary alone (basis, scope, request count): what the
proof rested on and covered, never the keys or tokens it was made with.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.gateways.models import Deployment
from apps.policies.models import Gateway, PolicySnapshot

NAMESPACE = "api:gateways-api"


class DeploymentSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name=f"{NAMESPACE}:deployment-detail")
    gateway = serializers.SlugRelatedField(slug_field="name", read_only=True, help_text="Name of the gateway.")
    snapshot = serializers.SlugRelatedField(
        slug_field="sha256",
        read_only=True,
        allow_null=True,
        help_text="sha256 of the policy snapshot deployed; null while it waits for a sync.",
    )
    snapshot_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Id of the policy snapshot deployed; null while it waits for a sync."
    )
    previous = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="Id of the deployment live on the gateway when this one was requested, or null.",
    )
    rendered_sha256 = serializers.CharField(
        read_only=True, help_text="sha256 of the rendered config, once rendered ('' before)."
    )

    class Meta:
        model = Deployment
        fields = [
            "id",
            "url",
            "gateway",
            "snapshot",
            "snapshot_id",
            "trigger",
            "actor",
            "state",
            "rendered_sha256",
            "previous",
            "created_at",
            "finished_at",
        ]


class DeploymentStepSerializer(serializers.Serializer):
    step = serializers.CharField(help_text="render, validate, prove, push, reload or probe.")
    started_at = serializers.DateTimeField()
    seconds = serializers.FloatField()
    ok = serializers.BooleanField()


class DeploymentMessageSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    level = serializers.CharField(help_text="info, warning or error.")
    text = serializers.CharField()


class DeploymentProofSerializer(serializers.Serializer):
    basis = serializers.CharField(
        help_text="Fingerprint of what the proof rested on (code, proxy version, settings); '' when it failed."
    )
    scope = serializers.CharField(help_text="'full: …' or 'differential: …', and why.")
    requests = serializers.IntegerField(help_text="Requests the proof sent through the proxy.")


class DeploymentDetailSerializer(DeploymentSerializer):
    steps = DeploymentStepSerializer(many=True, read_only=True, help_text="The steps run, in order.")
    messages = DeploymentMessageSerializer(many=True, read_only=True)
    proof = serializers.SerializerMethodField(help_text="The equivalence proof's summary; null until it ran.")

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "steps", "messages", "proof"]

    @extend_schema_field(DeploymentProofSerializer(allow_null=True))
    def get_proof(self, deployment: Deployment) -> dict | None:
        if not deployment.proof:
            return None
        return {name: deployment.proof.get(name) for name in ("basis", "scope", "requests")}


class DeployRequestSerializer(serializers.Serializer):
    gateways = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Gateway.objects.all(),
        many=True,
        required=False,
        error_messages={"does_not_exist": "There is no gateway named '{value}'."},
        help_text="Names of the gateways to deploy; omitted or empty: every gateway with a deploy directory.",
    )
    snapshot = serializers.SlugRelatedField(
        slug_field="sha256",
        queryset=PolicySnapshot.objects.defer("content"),
        required=False,
        error_messages={"does_not_exist": "There is no policy snapshot with sha256 '{value}'."},
        help_text="sha256 of the policy snapshot to deploy; omitted: the newest.",
    )


class AcceptedDeploymentSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Id of the deployment.")
    url = serializers.URLField(help_text="The deployment: poll it for state, steps and messages.")
    gateway = serializers.CharField(help_text="Name of the gateway.")
    state = serializers.CharField(help_text="'queued' (a request for a gateway with one queued joins it).")


class DeployAcceptedSerializer(serializers.Serializer):
    deployments = AcceptedDeploymentSerializer(many=True, help_text="One per gateway, by gateway name.")

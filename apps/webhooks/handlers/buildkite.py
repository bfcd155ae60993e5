"""What Buildkite deliveries do: a passed ``build.finished`` of a pipeline the receiver's settings map
to gateways (``{"deploy_pipelines": {"<pipeline slug>": ["<gateway>", …] | "all"}}``) builds a
snapshot and requests deploys of those gateways; every other delivery (``ping``, ``build.running``,
another pipeline, a failed or canceled build) is acknowledged and ignored, its outcome saying why.
"""

from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.gateways.services import deployments_request
from apps.policies.models import Gateway
from apps.policies.services import snapshot_build
from apps.webhooks.inbox import HandlerRefused
from apps.webhooks.models import InboundEvent, WebhookReceiver

DEPLOYING_EVENT = "build.finished"
DEPLOYING_STATE = "passed"  # Buildkite has no build.failed: a finished build says how in build.state


def buildkite_event_handle(event: InboundEvent, actor: Actor) -> dict:
    """The inbox's handler for Buildkite deliveries."""
    if event.event_type != DEPLOYING_EVENT:
        return {"ignored": f"{event.event_type}: only {DEPLOYING_EVENT} can trigger a deploy"}
    build = event.payload.get("build") or {}
    pipeline = str((event.payload.get("pipeline") or {}).get("slug") or "")
    seen = {"pipeline": pipeline, "build": build.get("number"), "state": build.get("state")}
    targets = deploy_pipelines(receiver=event.receiver).get(pipeline)
    if targets is None:
        return {**seen, "ignored": f"pipeline {pipeline or '(none)'} is not set to deploy (deploy_pipelines)"}
    if seen["state"] != DEPLOYING_STATE:
        return {**seen, "ignored": f"build {seen['build']} {seen['state']}: only a {DEPLOYING_STATE} build deploys"}
    gateways = _gateways(targets)
    snapshot = snapshot_build(actor=actor)
    try:
        deployments = deployments_request(actor=actor, trigger=Trigger.WEBHOOK, gateways=gateways, snapshot=snapshot)
    except ValidationError as refused:
        raise HandlerRefused(f"deploy of pipeline {pipeline}: {' '.join(refused.messages)}") from None
    return {**seen, "snapshot": snapshot.sha256, "deployments": [deployment.pk for deployment in deployments]}


def deploy_pipelines(*, receiver: WebhookReceiver) -> dict[str, list[str] | str]:
    """The receiver's pipeline slug -> gateway names (or "all") map, checked."""
    mapping = (receiver.settings or {}).get("deploy_pipelines") or {}
    if not isinstance(mapping, dict) or not all(
        value == "all" or (isinstance(value, list) and value and all(isinstance(name, str) for name in value))
        for value in mapping.values()
    ):
        raise HandlerRefused(
            f'the settings of {receiver} are wrong: deploy_pipelines maps pipeline slugs to gateway names or "all"'
        )
    return mapping


def _gateways(targets: list[str] | str) -> list[Gateway]:
    if targets == "all":
        return []  # every deployable one
    found = Gateway.objects.in_bulk(targets, field_name="name")
    unknown = [name for name in targets if name not in found]
    if unknown:
        raise HandlerRefused(f"deploy_pipelines names no gateway {', '.join(unknown)}")
    return [found[name] for name in targets]

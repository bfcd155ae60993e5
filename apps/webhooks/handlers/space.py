"""What Space deliveries do: an automation job's request (sync, then deploy what the sync produced,
while the job polls the deployments) and team-directory events (an incremental sync of the
receiver's identity source).

An automation request's deployments exist from the moment it is accepted, ``waiting``
(``automation_accept``, in the accept transaction), so the job's 202 can name them. Its handler then,
in the inbox's worker: runs each sync, builds the snapshot, and releases each waiting deployment with
that snapshot to the deploy workers; a failed sync fails them instead, naming the run. A sync of the
same source already running makes the handler refuse, for the inbox's sweep to retry; on its last
attempt the deployments fail, so no job polls forever.
"""

from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.gateways.choices import DeploymentState
from apps.gateways.models import Deployment
from apps.gateways.services import deployment_abandon, deployment_release, deployments_wait
from apps.identities.choices import SyncState
from apps.identities.models import IdentitySource, SyncRun
from apps.identities.sync import SyncBusy, SyncRefused, identity_source_sync, sync_refusal, sync_run_request
from apps.policies.models import Gateway
from apps.policies.services import snapshot_build
from apps.webhooks.inbox import MAX_ATTEMPTS, HandlerRefused
from apps.webhooks.models import InboundEvent, WebhookReceiver
from apps.webhooks.receivers import AUTOMATION, AutomationRequest, MalformedDelivery, automation_request_parse

# Space's team-directory events (integrations.md 1.5): each may change who belongs where
DIRECTORY_EVENTS = frozenset({"ProfileOrganizationEvent", "ProfileEvent", "TeamEvent", "TeamMembershipEvent"})


def automation_accept(event: InboundEvent, actor: Actor) -> None:
    """The inbox's accept hook: a new automation request gets its waiting deployments (all or none);
    a source or gateway it cannot use refuses it (``MalformedDelivery``, so nothing is stored)."""
    if event.event_type != AUTOMATION:
        return
    request = automation_request_parse(event.payload)
    automation_sources(request=request, receiver=event.receiver)
    gateways = _gateways(request)
    try:
        deployments = deployments_wait(actor=actor, trigger=Trigger.WEBHOOK, gateways=gateways)
    except ValidationError as refused:
        raise MalformedDelivery(f"deploy: {' '.join(refused.messages)}") from None
    event.deployments.set(deployments)


def automation_sources(*, request: AutomationRequest, receiver: WebhookReceiver) -> list[IdentitySource]:
    """The sources a request syncs, in its order: those named, else the receiver's own (if any)."""
    if request.sources is None:
        sources = [receiver.identity_source] if receiver.identity_source_id else []
    else:
        found = IdentitySource.objects.in_bulk(request.sources, field_name="slug")
        unknown = [slug for slug in request.sources if slug not in found]
        if unknown:
            raise MalformedDelivery(f"sync names no identity source {', '.join(unknown)} (give source slugs)")
        sources = [found[slug] for slug in request.sources]
    refusals = [refusal for refusal in (sync_refusal(source=source) for source in sources) if refusal]
    if refusals:
        raise MalformedDelivery(f"sync: {'; '.join(refusals)}")
    return sources


def _gateways(request: AutomationRequest) -> list[Gateway]:
    if request.gateways is None:
        return []  # every deployable one
    found = Gateway.objects.in_bulk(request.gateways, field_name="name")
    unknown = [name for name in request.gateways if name not in found]
    if unknown:
        raise MalformedDelivery(f"deploy names no gateway {', '.join(unknown)}")
    return [found[name] for name in request.gateways]


def space_event_handle(event: InboundEvent, actor: Actor) -> dict:
    """The inbox's handler for Space deliveries."""
    if event.event_type == AUTOMATION:
        return automation_run(event=event, actor=actor)
    return directory_event_handle(event=event, actor=actor)


def automation_run(*, event: InboundEvent, actor: Actor) -> dict:
    """Sync, build the snapshot, release the waiting deployments with it; or fail them, saying why."""
    request = automation_request_parse(event.payload)
    waiting = list(event.deployments.filter(state=DeploymentState.WAITING).select_related("gateway"))
    outcome = {
        "request_id": request.request_id,
        "deployments": sorted(event.deployments.values_list("pk", flat=True)),
        "syncs": [],
    }
    if not waiting:  # released (or given up) by an earlier attempt that did not get to finish
        return {**outcome, "note": "no deployment is waiting any more"}
    try:
        for source in automation_sources(request=request, receiver=event.receiver):
            run = identity_source_sync(source=source, actor=actor, trigger=Trigger.WEBHOOK)
            outcome["syncs"].append({"run": run.pk, "source": source.slug, "state": run.state})
            if run.state != SyncState.SUCCEEDED:
                return _fail(waiting, actor, outcome, f"sync run {run.pk} of {source.slug} failed: {_last_words(run)}")
        snapshot = snapshot_build(actor=actor)
        for deployment in waiting:
            deployment_release(deployment=deployment, snapshot=snapshot, actor=actor)
    except MalformedDelivery as gone:  # a source was deleted or disabled since the request was accepted
        return _fail(waiting, actor, outcome, str(gone))
    except SyncBusy as busy:
        if event.attempts >= MAX_ATTEMPTS:
            return _fail(waiting, actor, outcome, f"{busy} through {event.attempts} attempts")
        raise HandlerRefused(f"{busy}: the automation request is retried once it is done") from None
    except Exception as error:  # the deployments must not wait for ever on an event given up on
        if event.attempts >= MAX_ATTEMPTS:
            _fail(
                waiting,
                actor,
                outcome,
                f"inbound event {event.pk} failed {event.attempts} times ({type(error).__name__})",
            )
        raise
    return {**outcome, "snapshot": snapshot.sha256}


def _fail(waiting: list[Deployment], actor: Actor, outcome: dict, reason: str) -> dict:
    for deployment in waiting:
        deployment_abandon(deployment=deployment, actor=actor, reason=reason)
    return {**outcome, "failed": reason}


def _last_words(run: SyncRun) -> str:
    errors = [message["text"] for message in run.messages if message.get("level") == "error"]
    return errors[-1] if errors else run.state


def directory_event_handle(*, event: InboundEvent, actor: Actor) -> dict:
    """A team-directory event queues an incremental sync of the receiver's source (joining one queued
    or running); anything else is acknowledged and ignored."""
    if event.event_type not in DIRECTORY_EVENTS:
        return {"ignored": f"{event.event_type}: not a team-directory event"}
    source = event.receiver.identity_source
    if source is None:
        return {"ignored": f"{event.event_type}: the receiver has no identity source to sync"}
    try:
        run = sync_run_request(source=source, actor=actor, trigger=Trigger.WEBHOOK)
    except SyncRefused as refused:
        return {"ignored": f"{event.event_type}: {refused}"}
    return {"sync_run": run.pk, "source": source.slug, "because": event.event_type}

"""Okta event hooks: the users a delivery's events name are read from Okta at once and written as a
sync would write them, then the gateways whose routes they now reach differently are redeployed.

The read, not the event, says what the user is now: events arrive late, twice or out of order, and
the org's present state is what access must follow (a failed deactivation attempt, say, changes
nothing). Each event counts once per delivery (its ``uuid``), each user is read once however many
events name it; events of other types are acknowledged and listed as ignored.

All or nothing: the reads come first (Okta down or rate-limited raises, and the sweep retries the
whole delivery), then the writes, the snapshot and the deploy requests commit together. A retry
after a failure therefore still finds the change it has to deploy.
"""

import json

from django.db import transaction

from apps.core.actors import Actor
from apps.core.choices import Trigger
from apps.gateways.services import deployment_request
from apps.identities.choices import SourceKind
from apps.identities.models import IdentitySource
from apps.identities.refresh import RefreshBusy, identities_apply, identities_read
from apps.identities.source_write import IdentityRefresh
from apps.policies.access import gateways_reach_changed
from apps.policies.models import Gateway
from apps.policies.services import snapshot_build
from apps.policies.snapshot import compile_policy
from apps.webhooks.inbox import HandlerRefused
from apps.webhooks.models import InboundEvent, WebhookReceiver

# The events after which a user's access may differ. ``user.lifecycle.delete`` is listed in case
# Okta sends it besides ``delete.initiated`` (which it documents as hook-eligible).
HANDLED = frozenset(
    {
        "user.lifecycle.activate",
        "user.lifecycle.reactivate",
        "user.lifecycle.unsuspend",
        "user.lifecycle.deactivate",
        "user.lifecycle.suspend",
        "user.lifecycle.delete.initiated",
        "user.lifecycle.delete",
        "user.account.update_profile",
        "group.user_membership.add",
        "group.user_membership.remove",
    }
)
_MEMBERSHIP_COUNTS = ("memberships_added", "memberships_removed", "groups_created")


def okta_event_hook_handle(event: InboundEvent, actor: Actor) -> dict:
    source = _source(event.receiver)
    users, handled, ignored = _users_named(event.payload["data"]["events"])
    outcome = {"source": source.slug, "handled": handled, "ignored": ignored}
    if not users:
        return {**outcome, "identities": [], "snapshot": None, "deployments": [], "not_deployable": []}
    try:
        with identities_read(source=source, external_ids=users) as reads, transaction.atomic():
            refreshes = identities_apply(source=source, reads=reads, actor=actor)
            redeployed = _redeploy(refreshes, actor)
    except RefreshBusy as busy:
        raise HandlerRefused(f"{busy}; the sweep retries this delivery") from None
    return {**outcome, "identities": [_described(refresh) for refresh in refreshes], **redeployed}


def _source(receiver: WebhookReceiver) -> IdentitySource:
    source = receiver.identity_source
    if source is None:
        raise HandlerRefused(
            f"webhook receiver {receiver} is linked to no identity source: set its identity source to the "
            "Okta source its events update"
        )
    if source.kind != SourceKind.OKTA:
        raise HandlerRefused(f"webhook receiver {receiver} is linked to {source.name}, which is not an Okta source")
    if not source.enabled:
        raise HandlerRefused(f"{source.name} is disabled: its events are not applied until it is enabled")
    return source


def _users_named(events: list) -> tuple[list[str], list[dict], list[dict]]:
    """(user ids in the order named, handled events, ignored events), each event once by uuid."""
    users: list[str] = []
    handled: list[dict] = []
    ignored: list[dict] = []
    seen: set[str] = set()
    for item in events:
        if not isinstance(item, dict):
            ignored.append({"uuid": None, "event_type": None, "why": "not an event object"})
            continue
        uuid, event_type = item.get("uuid"), item.get("eventType")
        if isinstance(uuid, str) and uuid:
            if uuid in seen:
                continue
            seen.add(uuid)
        if event_type not in HANDLED:
            ignored.append({"uuid": uuid, "event_type": event_type, "why": "not an event that changes access"})
            continue
        targets = [
            target["id"]
            for target in item.get("target") or []
            if isinstance(target, dict) and target.get("type") == "User" and isinstance(target.get("id"), str)
        ]
        handled.append({"uuid": uuid, "event_type": event_type, "users": targets})
        users.extend(targets)
    return list(dict.fromkeys(users)), handled, ignored


def _redeploy(refreshes: list[IdentityRefresh], actor: Actor) -> dict:
    """A snapshot and a deploy of each gateway some refreshed identity now reaches differently;
    nothing when no one's effective roles changed."""
    changed = [refresh for refresh in refreshes if refresh.roles_changed]
    if not changed:
        return {"snapshot": None, "deployments": [], "not_deployable": []}
    snapshot = snapshot_build(actor=actor)
    # compiled here and dropped: a worker has no use for the access checks' cached copy
    policy = compile_policy(json.loads(snapshot.content), snapshot.sha256)
    names = gateways_reach_changed(policy, [(refresh.roles_before, refresh.roles_after) for refresh in changed])
    deployments, not_deployable = [], []
    for gateway in Gateway.objects.filter(name__in=names).order_by("name"):  # row locks in name order
        if not gateway.deploy_directory:
            not_deployable.append(gateway.name)
            continue
        deployment = deployment_request(gateway=gateway, actor=actor, trigger=Trigger.WEBHOOK, snapshot=snapshot)
        deployments.append(deployment.pk)
    return {"snapshot": snapshot.pk, "deployments": deployments, "not_deployable": not_deployable}


def _described(refresh: IdentityRefresh) -> dict:
    outcome = refresh.outcome
    counts = {"created": outcome.created, "updated": outcome.updated, "deactivated": outcome.deactivated}
    counts.update({name: outcome.counts.get(name, 0) for name in _MEMBERSHIP_COUNTS})
    return {
        "subject": refresh.subject,
        "found": refresh.found,
        "known": refresh.identity_id is not None,
        "changes": {name: count for name, count in counts.items() if count},
        "roles_before": _roles(refresh.roles_before),
        "roles_after": _roles(refresh.roles_after),
    }


def _roles(roles: frozenset[str] | None) -> list[str] | None:
    return None if roles is None else sorted(roles)

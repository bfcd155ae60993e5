"""Deploys with approval: editors and admins request a snapshot for some gateways, admins approve or
reject, and an approval queues the deployments as the API's deploy does (``deployments_request``).

With ``POLICYHUB_DEPLOY_TWO_PERSON`` on (the default) nobody approves their own request. Every
decision is taken under the request's row lock, so two admins deciding at once cannot both win, and
is audited (``deployrequest.<verb>``) in the transaction that makes it.
"""

from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.api.choices import HubRole
from apps.api.selectors import user_hub_roles
from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.core.services import model_create
from apps.gateways.choices import DeploymentTrigger, DeployRequestState
from apps.gateways.models import DeployRequest
from apps.gateways.services import deployments_request
from apps.policies.models import Gateway, PolicySnapshot

REQUESTERS = frozenset({HubRole.ADMIN, HubRole.EDITOR})
APPROVERS = frozenset({HubRole.ADMIN})


def _require_role(user, roles: frozenset[str], doing: str) -> None:
    if not user_hub_roles(user=user) & roles:
        raise PermissionDenied(f"Only {' or '.join(sorted(roles))} hub roles may {doing}.")


def deploy_request_create(
    *, snapshot: PolicySnapshot, gateways: Sequence[Gateway], user, actor: Actor, reason: str = ""
) -> DeployRequest:
    """Ask for ``snapshot`` to be deployed to ``gateways`` (each must have a deploy directory)."""
    _require_role(user, REQUESTERS, "request a deploy")
    if not gateways:
        raise ValidationError({"gateways": "Choose at least one gateway to deploy to."})
    undeployable = sorted(gateway.name for gateway in gateways if not gateway.deploy_directory)
    if undeployable:
        message = f"Not deployable (no deploy directory): {', '.join(undeployable)}."
        raise ValidationError({"gateways": message})
    return model_create(
        model=DeployRequest,
        actor=actor,
        data={"snapshot": snapshot, "requested_by": user, "reason": reason},
        m2m={"gateways": list(gateways)},
    )


def _lock_pending(deploy_request: DeployRequest) -> None:
    """Reload the request under its row lock (the caller's transaction); refused once decided. Its
    snapshot comes along without its content (megabytes at scale): a decision needs only its row."""
    locked = DeployRequest.objects.select_for_update(of=("self",)).select_related("snapshot").defer("snapshot__content")
    deploy_request.refresh_from_db(from_queryset=locked)
    if not deploy_request.pending:
        raise ValidationError(f"This request was already {deploy_request.get_state_display().lower()}.")


def _record_decision(
    *, deploy_request: DeployRequest, state: str, user, actor: Actor, note: str, after: dict | None = None
) -> None:
    deploy_request.state = state
    deploy_request.decided_by = user
    deploy_request.decided_at = timezone.now()
    deploy_request.decision_note = note
    deploy_request.full_clean()
    deploy_request.save()
    audit_record(
        actor=actor,
        action=f"deployrequest.{state}",
        object_type=deploy_request._meta.label_lower,
        object_id=deploy_request.pk,
        before={"state": DeployRequestState.REQUESTED},
        after={"state": state, "note": note, **(after or {})},
    )


def _decide(*, deploy_request: DeployRequest, state: str, user, actor: Actor, note: str) -> DeployRequest:
    with transaction.atomic():
        _lock_pending(deploy_request)
        _record_decision(deploy_request=deploy_request, state=state, user=user, actor=actor, note=note)
    return deploy_request


def deploy_request_approve(*, deploy_request: DeployRequest, user, actor: Actor, note: str = "") -> DeployRequest:
    """Approve and queue the deployments (for workers, once this commits), linking them to the request.

    Refused (``ValidationError``) when the request was decided meanwhile, when the two-person rule
    is on and ``user`` requested it, or when a gateway can no longer be deployed."""
    _require_role(user, APPROVERS, "approve a deploy")
    with transaction.atomic():
        _lock_pending(deploy_request)
        if settings.POLICYHUB_DEPLOY_TWO_PERSON and deploy_request.requested_by_id == user.pk:
            raise ValidationError(
                "You requested this deploy: another admin must approve it (two-person rule).", code="two_person"
            )
        deployments = deployments_request(
            actor=actor,
            trigger=DeploymentTrigger.UI,
            gateways=list(deploy_request.gateways.all()),
            snapshot=deploy_request.snapshot,
        )
        after = {"deployments": [deployment.pk for deployment in deployments]}
        _record_decision(
            deploy_request=deploy_request,
            state=DeployRequestState.APPROVED,
            user=user,
            actor=actor,
            note=note,
            after=after,
        )
        deploy_request.deployments.set(deployments)
    return deploy_request


def deploy_request_reject(*, deploy_request: DeployRequest, user, actor: Actor, note: str = "") -> DeployRequest:
    _require_role(user, APPROVERS, "reject a deploy")
    return _decide(deploy_request=deploy_request, state=DeployRequestState.REJECTED, user=user, actor=actor, note=note)


def deploy_request_cancel(*, deploy_request: DeployRequest, user, actor: Actor, note: str = "") -> DeployRequest:
    """Withdraw a request: its requester only."""
    if deploy_request.requested_by_id != user.pk:
        raise PermissionDenied("Only the person who requested a deploy may cancel it; an admin may reject it.")
    return _decide(deploy_request=deploy_request, state=DeployRequestState.CANCELLED, user=user, actor=actor, note=note)

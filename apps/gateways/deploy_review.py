"""Reads for deciding on a deploy: what it would change on each gateway (the semantic diff of the
snapshot live there and the one to deploy), whether the policy moved on since the newest snapshot,
the deploy requests, and a gateway's deploy history."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Case, IntegerField, QuerySet, Value, When

from apps.core.canonical import canonical_json
from apps.core.db import read_consistently
from apps.gateways.choices import DeploymentState, DeployRequestState
from apps.gateways.models import Deployment, DeployRequest
from apps.gateways.pipeline import STEPS
from apps.gateways.selectors import deployable_gateways, deployment_list, gateways_with_deployments
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import compiled_policy, snapshot_newest
from apps.policies.semantic_diff import AccessDiff, access_diff
from apps.policies.snapshot import content_sha256, snapshot_content

RECENT_REQUESTS = 20


@dataclass(frozen=True)
class GatewayReview:
    gateway: Gateway
    live: Deployment | None  # what the gateway runs now
    baseline: PolicySnapshot | None  # what the diff starts from (None: nothing deployed)
    diff: AccessDiff


def deploy_review(
    *, snapshot: PolicySnapshot, gateways: Sequence[Gateway], baselines: dict[int, PolicySnapshot | None] | None = None
) -> list[GatewayReview]:
    """The semantic diff of deploying ``snapshot`` to each of ``gateways``, by gateway name, against
    ``baselines`` (gateway id -> snapshot; default: the snapshot live on each gateway)."""
    rows = gateways_with_deployments(names=[gateway.name for gateway in gateways])
    by_baseline: dict[str, list] = defaultdict(list)
    if baselines is None:
        baselines = {row.gateway.pk: row.live.snapshot if row.live else None for row in rows}
    for row in rows:
        baseline = baselines.get(row.gateway.pk)
        by_baseline[baseline.sha256 if baseline else ""].append((row, baseline))
    after = compiled_policy(snapshot=snapshot)
    reviews = []
    # one baseline compiled at a time: at scale each compiled snapshot holds a couple of hundred MiB
    for members in by_baseline.values():
        baseline = members[0][1]
        before = compiled_policy(snapshot=baseline) if baseline else None
        for row, _ in members:
            diff = access_diff(before=before, after=after, gateway=row.gateway.name)
            reviews.append(GatewayReview(row.gateway, row.live, baseline, diff))
    return sorted(reviews, key=lambda review: review.gateway.name)


def policy_moved_on(*, snapshot: PolicySnapshot | None) -> bool:
    """Whether a snapshot built now would differ from ``snapshot`` (None: there is none yet). Reads
    the whole policy, as building does, but stores nothing."""
    return snapshot is None or content_sha256(canonical_json(read_consistently(snapshot_content))) != snapshot.sha256


def deploy_request_list() -> QuerySet[DeployRequest]:
    """Requests awaiting a decision first, then the newest."""
    pending_first = Case(
        When(state=DeployRequestState.REQUESTED, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return (
        DeployRequest.objects.select_related("snapshot", "requested_by", "decided_by")
        .defer("snapshot__content")
        .prefetch_related("gateways")
        .order_by(pending_first, "-requested_at", "-id")
    )


@dataclass(frozen=True)
class DeployOverview:
    candidate: PolicySnapshot | None  # the newest snapshot
    policy_moved_on: bool  # a snapshot built now would differ from the candidate
    reviews: list[GatewayReview]  # every deployable gateway
    undeployable: list[Gateway]
    requests: list[DeployRequest]


def deploy_overview() -> DeployOverview:
    candidate = snapshot_newest()
    deployable = list(deployable_gateways())
    return DeployOverview(
        candidate=candidate,
        policy_moved_on=policy_moved_on(snapshot=candidate),
        reviews=deploy_review(snapshot=candidate, gateways=deployable) if candidate else [],
        undeployable=list(Gateway.objects.filter(deploy_directory="").order_by("name")),
        requests=list(deploy_request_list()[:RECENT_REQUESTS]),
    )


def deploy_request_review(*, deploy_request: DeployRequest) -> list[GatewayReview]:
    """What the request changes on each of its gateways: against what is live now while it awaits a
    decision (what approving it would change), against what was live before its deployments once approved."""
    gateways = list(deploy_request.gateways.all())
    baselines = None
    if deploy_request.state == DeployRequestState.APPROVED:
        deployments = deploy_request.deployments.select_related("previous__snapshot").defer(
            "previous__snapshot__content"
        )
        baselines = {
            deployment.gateway_id: deployment.previous.snapshot if deployment.previous else None
            for deployment in deployments
        }
    return deploy_review(snapshot=deploy_request.snapshot, gateways=gateways, baselines=baselines)


def gateway_deployments(*, gateway: Gateway) -> QuerySet[Deployment]:
    """The gateway's deployments, newest first."""
    return deployment_list().filter(gateway=gateway).order_by("-created_at", "-id")


def rollback_candidate(*, deployment: Deployment, live: Deployment | None) -> bool:
    """Whether "roll back to this snapshot" makes sense for ``deployment``: it went live once with a
    snapshot other than the one live now."""
    return (
        deployment.state == DeploymentState.LIVE
        and deployment.snapshot_id is not None
        and (live is None or deployment.snapshot_id != live.snapshot_id)
    )


@dataclass(frozen=True)
class StepProgress:
    name: str
    status: str  # done | failed | running | pending | skipped
    seconds: float | None
    started_at: str


def deployment_progress(*, deployment: Deployment) -> list[StepProgress]:
    """Each pipeline step of ``deployment`` as it stands: what ran (its last run: a resumed deploy
    runs steps again), what runs now, what is still to come or was never reached."""
    recorded = {entry["step"]: entry for entry in deployment.steps}
    progress = []
    for name, state, _ in STEPS:
        entry = recorded.get(name)
        if deployment.state == state:
            progress.append(StepProgress(name, "running", None, ""))
        elif entry is not None:
            status = "done" if entry["ok"] else "failed"
            progress.append(StepProgress(name, status, entry["seconds"], entry["started_at"]))
        else:
            progress.append(StepProgress(name, "skipped" if deployment.finished else "pending", None, ""))
    return progress

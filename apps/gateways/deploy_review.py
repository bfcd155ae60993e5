"""Reads for deciding on a deploy: what it would change on each gateway (the semantic diff of the
snapshot live there and the one to deploy), whether the policy moved on since the newest snapshot,
the deploy requests, and a gateway's deploy history."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from django.db.models import Case, IntegerField, QuerySet, Value, When

from apps.core.canonical import canonical_json
from apps.core.db import read_consistently
from apps.gateways.choices import DeploymentState, DeployRequestState
from apps.gateways.models import Deployment, DeployRequest
from apps.gateways.pipeline import STEPS
from apps.gateways.selectors import deployment_list, gateways_with_deployments
from apps.identities.models import Identity
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import compiled_policy, snapshot_newest
from apps.policies.semantic_diff import AccessDiff, AccessShift, access_diff
from apps.policies.snapshot import content_sha256, snapshot_content

RECENT_REQUESTS = 20


SHOWN_SUBJECTS = 25  # per group of identities gaining (losing) the same routes; the rest are counted


@dataclass(frozen=True)
class ShownShift:
    """An ``AccessShift`` as a page shows it: its routes, its first identities with their user names."""

    routes: tuple[str, ...]
    people: tuple[tuple[str, str], ...]  # (subject, username; "" when no identity has that subject)
    count: int  # identities in all

    @property
    def more(self) -> int:
        return self.count - len(self.people)


@dataclass(frozen=True)
class GatewayReview:
    gateway: Gateway
    live: Deployment | None  # what the gateway runs now
    baseline: PolicySnapshot | None  # what the diff starts from (None: nothing deployed)
    diff: AccessDiff
    gains: tuple[ShownShift, ...] = ()
    losses: tuple[ShownShift, ...] = ()
    moves: tuple[ShownShift, ...] = ()


def subject_usernames(subjects: Iterable[str]) -> dict[str, str]:
    """Subject ('<source slug>:<external id>') -> the user name of its identity: one query per source."""
    by_source: dict[str, set[str]] = defaultdict(set)
    for subject in subjects:
        slug, _, external_id = subject.partition(":")
        by_source[slug].add(external_id)
    names = {}
    for slug, external_ids in by_source.items():
        rows = Identity.objects.filter(source__slug=slug, external_id__in=external_ids).values_list(
            "external_id", "username"
        )
        names.update({f"{slug}:{external_id}": username for external_id, username in rows})
    return names


def _shown(reviews: list[GatewayReview]) -> list[GatewayReview]:
    """The reviews with their shifts' first identities named, in one query per identity source."""
    shifts = [shift for review in reviews for shift in (*review.diff.gains, *review.diff.losses, *review.diff.moves)]
    names = subject_usernames(subject for shift in shifts for subject in shift.subjects[:SHOWN_SUBJECTS])

    def shown(shifts: tuple[AccessShift, ...]) -> tuple[ShownShift, ...]:
        return tuple(
            ShownShift(
                shift.routes,
                tuple((subject, names.get(subject, "")) for subject in shift.subjects[:SHOWN_SUBJECTS]),
                len(shift.subjects),
            )
            for shift in shifts
        )

    return [
        replace(
            review, gains=shown(review.diff.gains), losses=shown(review.diff.losses), moves=shown(review.diff.moves)
        )
        for review in reviews
    ]


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
    return _shown(sorted(reviews, key=lambda review: review.gateway.name))


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
    reviews: list[GatewayReview]  # every gateway, deployable or not (what it would get, once it is)
    requests: list[DeployRequest]

    @property
    def deployable(self) -> list[Gateway]:
        return [review.gateway for review in self.reviews if review.gateway.deploy_directory]


def deploy_overview() -> DeployOverview:
    candidate = snapshot_newest()
    gateways = list(Gateway.objects.order_by("name"))
    return DeployOverview(
        candidate=candidate,
        policy_moved_on=policy_moved_on(snapshot=candidate),
        reviews=deploy_review(snapshot=candidate, gateways=gateways) if candidate else [],
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

"""A Space automation job asks policyhub to sync identities and roll out the policy, and polls the
deployments it is answered with until they are live: the whole way on real proxies, a failed sync
failing the deployments, redeliveries answered alike and acted on once, malformed requests refused
with nothing stored; and Space's team-directory events queuing a sync."""

import json
import time
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.services import service_token_create
from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.credentials.mint import mint_edge_token
from apps.gateways.choices import FINAL_STATES, DeploymentState
from apps.gateways.live import free_loopback_port
from apps.gateways.models import Deployment
from apps.gateways.services import deployment_run, deployments_sweep
from apps.identities.choices import SyncState
from apps.identities.models import Group, Identity, IdentitySource, SyncRun
from apps.identities.sync import SYNC_LOCK_CLASS
from apps.policies import services as policies
from apps.policies.choices import AuthMode, MatchKind
from apps.policies.models import PolicySnapshot, Role, Route
from apps.webhooks.choices import EventState
from apps.webhooks.inbox import MAX_ATTEMPTS, inbound_event_process
from apps.webhooks.models import InboundEvent
from tests.fakes.space import FakeSpace
from tests.support.celery_worker import celery_reconfigured
from tests.support.deploy import Stage
from tests.support.problems import problem
from tests.support.sources import space_source
from tests.webhooks.conftest import SPACE_KEY, payload, post, receiver, space_headers

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("automation-test")
URL = "/webhooks/space/space-main"
INBOX = Actor.system("inbox")


@pytest.fixture
def space():
    with FakeSpace(client_secret="s3cret-space-client") as fake:
        yield fake


@pytest.fixture
def source(db, space):
    return space_source(space)


@pytest.fixture
def automation(source):
    """The Space receiver the jobs call; its identity source is what a request without ``sync`` syncs."""
    return receiver("space", SPACE_KEY, identity_source=source)


@pytest.fixture
def edge(db, tmp_path):
    """A deployable gateway (no proxy runs it: these tests stop before a worker would deploy)."""
    return policies.gateway_create(
        actor=ACTOR, name="edge-a", kind="haproxy", listen_address=f"127.0.0.1:{free_loopback_port()}",
        public_hostnames=["app.example.test"], deploy_directory=str(tmp_path / "edge-a"),
    )  # fmt: skip


@pytest.fixture
def job():
    """The job's API client: a service token, as a Space project secret would hold."""
    issued = service_token_create(name="space-job", role="service", identity=None, actor=ACTOR)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext.reveal()}")
    return api


@contextmanager
def broker_down():
    """Redis unreachable: nothing is handed to a worker, so a test can run the inbox's worker step
    itself and see where the deployments stand before a deploy worker would take them."""
    saved = celery_reconfigured(broker_url=f"redis://127.0.0.1:{free_loopback_port()}/0", task_always_eager=False)
    try:
        yield
    finally:
        celery_reconfigured(**saved)


@contextmanager
def lock_held_elsewhere(lock_class: int, key: int):
    """Another session (another worker's sync) holds the advisory lock."""
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [lock_class, key])
        yield


def request_body(request_id: str = "exec-7f3a", **fields) -> bytes:
    return json.dumps({"requestId": request_id, **fields}).encode()


def call(client, body: bytes):
    return post(client, URL, body, space_headers(body))


def poll_until_finished(api: APIClient, url: str, *, timeout: float = 120) -> dict:
    """What the job does: GET its deployment until it is live (or has failed)."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(url)
        assert response.status_code == 200, response.content
        shown = response.json()
        if shown["state"] in FINAL_STATES:
            return shown
        assert time.monotonic() < deadline, f"still {shown['state']} after {timeout} s: {shown['messages']}"
        time.sleep(0.2)


# The whole way ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_job_syncs_space_then_deploys_and_polls_its_deployment_until_live(
    stage: Stage, space, source, automation, job, client, django_capture_on_commit_callbacks
):
    """Ann joins Space's Release team; the job asks for a sync and a rollout; the answer names the
    deployment, which deploys the snapshot built after the sync to the running proxy; Ann's token
    then reaches the route only Release members may use. A retried job step hears the same."""
    release_team = space.add_team("Release")
    ann = space.add_profile("Ann.Lee", first="Ann", last="Lee")
    space.add_membership(ann, release_team)
    release = Role.objects.create(slug="release-engineer")
    group = Group.objects.create(source=source, external_id=release_team, name="Release")  # known from a past sync
    policies.role_mapping_create(actor=ACTOR, role=release, match_kind=MatchKind.GROUP, group=group)
    upstream = Route.objects.filter(gateway=stage.gateway).first().upstream_url
    application = policies.application_create(actor=ACTOR, name="releases", slug="releases")
    route = policies.route_create(
        actor=ACTOR, gateway=stage.gateway, application=application, host=stage.host, path_prefix="/release",
        upstream_url=upstream,
    )  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[release])
    body = request_body(deploy=[stage.gateway.name])

    with django_capture_on_commit_callbacks(execute=True):
        response = call(client, body)

    assert response.status_code == 202, response.content
    answered = response.json()
    [deployment] = answered["deployments"]
    assert (deployment["gateway"], response["Location"]) == (stage.gateway.name, deployment["url"])
    shown = poll_until_finished(job, deployment["url"])
    assert shown["state"] == DeploymentState.LIVE, shown["messages"]
    assert shown["trigger"] == "webhook" and shown["actor"] == "webhook:space/space-main"
    assert shown["previous"] == stage.first.pk

    run = SyncRun.objects.get()
    assert (run.state, run.trigger, run.created) == (SyncState.SUCCEEDED, "webhook", 1)
    snapshot = PolicySnapshot.objects.get(sha256=shown["snapshot"])
    assert snapshot.created_at > run.finished_at  # built after the sync ...
    assert f"space:{ann}" in snapshot.content  # ... and holding what it imported
    deployed = Deployment.objects.get(pk=deployment["id"])
    assert stage.answers(deployed)  # the proxy serves this deployment's snapshot
    ann_identity = Identity.objects.get(source=source, external_id=ann)
    assert stage.status("/release/notes", mint_edge_token(identity=ann_identity, gateway=stage.gateway).token) == 200
    assert stage.status("/release/notes") == 401
    event = InboundEvent.objects.get()
    assert event.state == EventState.DONE
    assert event.outcome == {
        "request_id": "exec-7f3a",
        "deployments": [deployment["id"]],
        "syncs": [{"run": run.pk, "source": "space", "state": "succeeded"}],
        "snapshot": snapshot.sha256,
    }

    with django_capture_on_commit_callbacks(execute=True):
        again = call(client, body)  # the job step retried: a fresh signature, the same request

    assert again.status_code == 202
    assert again.json()["deployments"] == [{**deployment, "state": "live"}]
    assert again.json()["duplicate"] is True
    assert (SyncRun.objects.count(), Deployment.objects.count(), InboundEvent.objects.count()) == (1, 2, 1)


# Before and after the sync -------------------------------------------------------------------------


def test_deployments_wait_for_the_sync_then_queue_with_the_snapshot_built_after_it(
    space, source, automation, edge, job, client, django_capture_on_commit_callbacks
):
    space.add_profile("Ann.Lee")
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        response = call(client, request_body(deploy=["edge-a"]))

    assert response.status_code == 202
    event = InboundEvent.objects.get()
    [answered] = response.json()["deployments"]
    assert response.json() == {
        "event": event.pk,
        "delivery_id": "automation:exec-7f3a",
        "state": "pending",
        "duplicate": False,
        "deployments": [{"id": answered["id"], "url": answered["url"], "gateway": "edge-a", "state": "waiting"}],
    }
    shown = job.get(answered["url"]).json()
    assert (shown["state"], shown["snapshot"], shown["snapshot_id"], shown["trigger"]) == (
        "waiting",
        None,
        None,
        "webhook",
    )
    assert [row["id"] for row in job.get("/api/v1/deployments?state=waiting").json()["results"]] == [answered["id"]]
    assert deployments_sweep(actor=ACTOR, now=timezone.now() + timedelta(minutes=5)) == []
    assert deployment_run(deployment_id=answered["id"]).state == DeploymentState.WAITING  # a stray task: nothing
    assert not SyncRun.objects.exists() and not PolicySnapshot.objects.exists()

    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        inbound_event_process(event_id=event.pk, actor=INBOX)  # the inbox's worker

    run = SyncRun.objects.get()
    snapshot = PolicySnapshot.objects.get()
    assert run.state == SyncState.SUCCEEDED and snapshot.identity_count == 1
    shown = job.get(answered["url"]).json()
    assert (shown["state"], shown["snapshot"]) == ("queued", snapshot.sha256)
    assert "not handed to a worker: the broker is unreachable" in shown["messages"][-1]["text"]
    event.refresh_from_db()
    assert event.outcome["syncs"] == [{"run": run.pk, "source": "space", "state": "succeeded"}]


def test_a_failed_sync_fails_the_waiting_deployments_naming_the_run(
    space, source, automation, edge, job, client, django_capture_on_commit_callbacks
):
    space.permissions.discard("Profile.View")  # the app lost a permission in Space

    with django_capture_on_commit_callbacks(execute=True):
        response = call(client, request_body(deploy="all"))

    [answered] = response.json()["deployments"]
    shown = poll_until_finished(job, answered["url"])
    run = SyncRun.objects.get()
    assert run.state == SyncState.FAILED
    assert shown["state"] == "failed" and shown["snapshot"] is None and shown["finished_at"]
    reason = shown["messages"][-1]["text"]
    assert reason.startswith(f"sync run {run.pk} of space failed: reading Acme Space failed")
    assert reason.endswith("; nothing was deployed")
    assert not PolicySnapshot.objects.exists()
    event = InboundEvent.objects.get()
    assert event.state == EventState.DONE and event.outcome["failed"].startswith(f"sync run {run.pk} of space")


def test_a_sync_already_running_is_waited_for_then_a_retry_syncs_and_queues(
    space, source, automation, edge, job, client, django_capture_on_commit_callbacks
):
    with lock_held_elsewhere(SYNC_LOCK_CLASS, source.pk):
        with django_capture_on_commit_callbacks(execute=True):
            response = call(client, request_body(deploy=["edge-a"]))
        event = InboundEvent.objects.get()
        assert (event.state, event.attempts) == (EventState.FAILED, 1)
        assert event.last_error == "a sync of Acme Space is running: the automation request is retried once it is done"
        [answered] = response.json()["deployments"]
        assert job.get(answered["url"]).json()["state"] == "waiting"  # the job keeps polling

    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        inbound_event_process(event_id=event.pk, actor=INBOX)  # the sweep's retry, once the other sync is done

    event.refresh_from_db()
    assert (event.state, event.attempts) == (EventState.DONE, 2)
    assert job.get(answered["url"]).json()["state"] == "queued"


def test_a_sync_running_through_every_attempt_fails_the_deployments(
    space, source, automation, edge, job, client, django_capture_on_commit_callbacks
):
    with lock_held_elsewhere(SYNC_LOCK_CLASS, source.pk):
        with django_capture_on_commit_callbacks(execute=True):
            response = call(client, request_body(deploy=["edge-a"]))
        event = InboundEvent.objects.get()
        for _ in range(MAX_ATTEMPTS - 1):
            inbound_event_process(event_id=event.pk, actor=INBOX)

    [answered] = response.json()["deployments"]
    shown = job.get(answered["url"]).json()
    assert shown["state"] == "failed"
    assert shown["messages"][-1]["text"] == (
        f"a sync of Acme Space is running through {MAX_ATTEMPTS} attempts; nothing was deployed"
    )
    event.refresh_from_db()
    assert (event.state, event.attempts) == (EventState.DONE, MAX_ATTEMPTS)
    assert not SyncRun.objects.exists()


def test_an_automation_whose_worker_died_on_every_attempt_fails_the_deployments(
    space, source, automation, edge, job, client, django_capture_on_commit_callbacks
):
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        response = call(client, request_body(deploy=["edge-a"]))
    event = InboundEvent.objects.get()
    InboundEvent.objects.filter(pk=event.pk).update(state=EventState.PROCESSING, attempts=MAX_ATTEMPTS)

    inbound_event_process(event_id=event.pk, actor=INBOX)  # the sweep's hand-over: no worker holds it

    [answered] = response.json()["deployments"]
    shown = job.get(answered["url"]).json()
    assert shown["state"] == "failed"
    assert shown["messages"][-1]["text"] == (
        f"inbound event {event.pk} gave up after {MAX_ATTEMPTS} attempts, the last cut short by its worker's "
        "death; nothing was deployed"
    )
    event.refresh_from_db()
    assert (event.state, event.attempts) == (EventState.FAILED, MAX_ATTEMPTS)
    assert not SyncRun.objects.exists()


# Redelivery ------------------------------------------------------------------------------------


def test_a_redelivered_request_answers_the_same_deployments_and_acts_once(
    space, source, automation, edge, client, django_capture_on_commit_callbacks
):
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        first = call(client, request_body(deploy=["edge-a"]))
        inbound_event_process(event_id=InboundEvent.objects.get().pk, actor=INBOX)
        second = call(client, request_body(deploy=["edge-a"]))
        changed = call(client, request_body(deploy="all", sync=[]))  # the same requestId: the same request

    assert [response.status_code for response in (first, second, changed)] == [202, 202, 202]
    [deployment] = first.json()["deployments"]
    for again in (second, changed):
        assert again.json()["deployments"] == [{**deployment, "state": "queued"}]
        assert again.json()["duplicate"] is True and again.json()["state"] == "done"
    assert (InboundEvent.objects.count(), Deployment.objects.count(), SyncRun.objects.count()) == (1, 1, 1)
    inbound_event_process(event_id=InboundEvent.objects.get().pk, actor=INBOX)  # a redelivered task
    assert SyncRun.objects.count() == 1 and InboundEvent.objects.get().attempts == 1
    assert AuditEvent.objects.filter(action="webhook.duplicate").count() == 2


# Refused requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"deploy": "all"}, "requestId must be a non-empty string of at most 150 characters"),
        ({"requestId": "", "deploy": "all"}, "requestId must be a non-empty string"),
        ({"requestId": 7, "deploy": "all"}, "requestId must be a non-empty string"),
        ({"requestId": "x" * 151, "deploy": "all"}, "at most 150 characters"),
        ({"requestId": "r"}, 'deploy is required: a list of gateway names, or "all"'),
        ({"requestId": "r", "deploy": []}, 'deploy names no gateway: list at least one, or "all"'),
        ({"requestId": "r", "deploy": "edge-a"}, 'deploy must be a list of gateway names, or "all"'),
        ({"requestId": "r", "deploy": ["edge-a", 3]}, 'deploy must be a list of gateway names, or "all"'),
        ({"requestId": "r", "deploy": "all", "sync": "space"}, "sync must be a list of identity source slugs"),
        ({"requestId": "r", "deploy": "all", "deploys": ["x"]}, "unknown field(s) deploys: an automation request"),
        ({"requestId": "r", "deploy": ["edge-a", "nowhere"]}, "deploy names no gateway nowhere"),
        ({"requestId": "r", "deploy": ["undeployable"]}, "deploy: Gateway undeployable has no deploy directory"),
        ({"requestId": "r", "deploy": "all", "sync": ["space", "nope"]}, "sync names no identity source nope"),
        ({"requestId": "r", "deploy": "all", "sync": ["local"]}, "sync: Local is a local source: it has nothing"),
    ],
)
def test_malformed_requests_are_400s_that_store_nothing(automation, edge, client, fields, detail):
    policies.gateway_create(
        actor=ACTOR, name="undeployable", kind="haproxy", listen_address="127.0.0.1:8443", public_hostnames=[]
    )
    IdentitySource.objects.create(name="Local", slug="local", kind="local")
    body = json.dumps(fields).encode()

    refused = problem(call(client, body), 400)

    assert refused["code"] == "malformed" and detail in refused["detail"], refused["detail"]
    assert not InboundEvent.objects.exists() and not Deployment.objects.exists()
    [audited] = AuditEvent.objects.filter(action="webhook.refuse")
    assert audited.after == {"receiver": "space/space-main", "status": 400, "reason": refused["detail"]}


def test_a_request_to_deploy_everywhere_with_nothing_deployable_is_refused(automation, client):
    refused = problem(call(client, request_body(deploy="all")), 400)
    assert refused["detail"] == "deploy: No gateway has a deploy directory: set one to make a gateway deployable."
    assert not InboundEvent.objects.exists()


def test_a_forged_request_is_refused_before_anything_is_read(automation, edge, client):
    body = request_body(deploy=["edge-a"])
    refused = problem(post(client, URL, body, space_headers(body, key="a-guessed-key")), 401)
    assert refused["code"] == "bad_signature"
    assert not InboundEvent.objects.exists() and not Deployment.objects.exists()


# Team-directory events -----------------------------------------------------------------------------


def _directory_event(class_name: str, **fields) -> bytes:
    envelope = json.loads(payload("webhook_profile_organization_event.docs.json"))
    envelope["payload"] = {**envelope["payload"], "className": class_name, **fields}
    return json.dumps(envelope).encode()


def test_a_member_leaving_the_organization_syncs_the_receivers_source(
    space, source, automation, client, django_capture_on_commit_callbacks
):
    ann = space.add_profile("Ann.Lee")
    with django_capture_on_commit_callbacks(execute=True):
        call(client, _directory_event("ProfileOrganizationEvent", joinedOrganization=True))
    assert Identity.objects.get(external_id=ann).active
    space.profiles[ann]["archived"] = True  # she leaves; Space tells the app
    left = _directory_event("ProfileOrganizationEvent", joinedOrganization=False, leftOrganization=True)

    with django_capture_on_commit_callbacks(execute=True):
        assert call(client, left).status_code == 202

    runs = list(SyncRun.objects.order_by("id"))
    assert [(run.state, run.trigger) for run in runs] == [("succeeded", "webhook")] * 2
    assert not Identity.objects.get(external_id=ann).active
    event = InboundEvent.objects.order_by("id").last()
    assert event.outcome == {"sync_run": runs[1].pk, "source": "space", "because": "ProfileOrganizationEvent"}


def test_directory_events_join_a_queued_sync_and_other_events_are_ignored(
    source, automation, client, django_capture_on_commit_callbacks
):
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        for body in (_directory_event("TeamMembershipEvent"), _directory_event("TeamEvent")):
            call(client, body)
        for event in InboundEvent.objects.all():
            inbound_event_process(event_id=event.pk, actor=INBOX)
    with django_capture_on_commit_callbacks(execute=True):
        call(client, _directory_event("MessagePayload"))

    run = SyncRun.objects.get()  # one queued run, joined by the second event
    assert run.state == SyncState.QUEUED
    outcomes = [event.outcome for event in InboundEvent.objects.order_by("id")]
    assert outcomes == [
        {"sync_run": run.pk, "source": "space", "because": "TeamMembershipEvent"},
        {"sync_run": run.pk, "source": "space", "because": "TeamEvent"},
        {"ignored": "MessagePayload: not a team-directory event"},
    ]


def test_a_receiver_without_a_source_acknowledges_directory_events(db, client, django_capture_on_commit_callbacks):
    receiver("space", SPACE_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        assert call(client, _directory_event("ProfileEvent")).status_code == 202
    event = InboundEvent.objects.get()
    assert event.state == EventState.DONE
    assert event.outcome == {"ignored": "ProfileEvent: the receiver has no identity source to sync"}
    assert not SyncRun.objects.exists()


# Nothing else trips on a waiting deployment ------------------------------------------------------------


def test_a_waiting_deployment_shows_in_the_admin(automation, edge, client, admin_client):
    call(client, request_body(deploy=["edge-a"]))
    waiting = Deployment.objects.get()
    assert admin_client.get("/admin/gateways/deployment/?state=waiting").status_code == 200
    assert admin_client.get(f"/admin/gateways/deployment/{waiting.pk}/change/").status_code == 200

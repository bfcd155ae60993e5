"""Buildkite's finished builds: a passed build of a pipeline the receiver maps to gateways builds a
snapshot and deploys it (to a real proxy in the slow test); other builds, pipelines and events are
acknowledged and ignored, saying why; settings that name what does not exist fail the event readably."""

import json
from contextlib import contextmanager

import pytest

from apps.core.actors import Actor
from apps.gateways.choices import DeploymentState
from apps.gateways.live import free_loopback_port
from apps.gateways.models import Deployment
from apps.policies import services as policies
from apps.policies.models import PolicySnapshot
from apps.webhooks.choices import EventState
from apps.webhooks.inbox import inbound_event_process
from apps.webhooks.models import InboundEvent
from tests.support.celery_worker import celery_reconfigured
from tests.support.deploy import Stage
from tests.webhooks.conftest import BUILDKITE_TOKEN, build_finished, buildkite_headers, payload, post, receiver

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("buildkite-test")
URL = "/webhooks/buildkite/buildkite-main"
PIPELINE = "great-pipeline"  # the fixture build's pipeline


def deliver(client, body: bytes, event: str = "build.finished"):
    response = post(client, URL, body, buildkite_headers(body, event=event))
    assert response.status_code == 200, response.content
    return InboundEvent.objects.get(delivery_id__contains=f"#{json.loads(body)['build']['number']}:")


def deploying(targets) -> dict:
    return {"deploy_pipelines": {PIPELINE: targets, "docs-site": "all"}}


@pytest.fixture
def gateways(db, tmp_path):
    """Two deployable gateways (no proxy runs them) and one that cannot be deployed."""
    for name in ("edge-a", "edge-b"):
        policies.gateway_create(
            actor=ACTOR, name=name, kind="haproxy", listen_address=f"127.0.0.1:{free_loopback_port()}",
            public_hostnames=[], deploy_directory=str(tmp_path / name),
        )  # fmt: skip
    policies.gateway_create(
        actor=ACTOR, name="edge-z", kind="haproxy", listen_address="127.0.0.1:8443", public_hostnames=[]
    )


@contextmanager
def broker_down():
    """Nothing reaches a worker: the test runs the inbox's step itself and finds the deployments
    queued, where a deploy worker would take them."""
    saved = celery_reconfigured(broker_url=f"redis://127.0.0.1:{free_loopback_port()}/0", task_always_eager=False)
    try:
        yield
    finally:
        celery_reconfigured(**saved)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["haproxy"], indirect=True)
def test_a_passed_build_of_a_deploying_pipeline_goes_live_on_the_proxy(
    stage: Stage, client, django_capture_on_commit_callbacks
):
    receiver("buildkite", BUILDKITE_TOKEN, settings=deploying([stage.gateway.name]))
    assert stage.status("/b/page") == 404  # added to the policy, not deployed yet

    with django_capture_on_commit_callbacks(execute=True):
        event = deliver(client, build_finished(number=41))

    event.refresh_from_db()
    deployment = Deployment.objects.exclude(pk=stage.first.pk).get()
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert (deployment.trigger, deployment.snapshot) == ("webhook", stage.next_snapshot)
    assert stage.status("/b/page") == 200
    assert event.state == EventState.DONE
    assert event.outcome == {
        "pipeline": PIPELINE,
        "build": 41,
        "state": "passed",
        "snapshot": stage.next_snapshot.sha256,
        "deployments": [deployment.pk],
    }


def test_a_pipeline_mapped_to_all_deploys_every_deployable_gateway_with_a_new_snapshot(
    gateways, client, django_capture_on_commit_callbacks
):
    receiver("buildkite", BUILDKITE_TOKEN, settings={"deploy_pipelines": {PIPELINE: "all"}})
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        event = deliver(client, build_finished(number=42))
        assert event.state == EventState.PENDING
        inbound_event_process(event_id=event.pk, actor=Actor.system("inbox"))

    snapshot = PolicySnapshot.objects.get()
    queued = list(Deployment.objects.order_by("gateway__name"))
    assert [(d.gateway.name, d.state, d.snapshot, d.trigger) for d in queued] == [
        ("edge-a", "queued", snapshot, "webhook"),
        ("edge-b", "queued", snapshot, "webhook"),
    ]
    event.refresh_from_db()
    assert event.outcome["deployments"] == [d.pk for d in queued] and event.outcome["snapshot"] == snapshot.sha256


@pytest.mark.parametrize(
    ("settings", "body", "event_name", "ignored"),
    [
        (deploying(["edge-a"]), build_finished(number=43, state="failed"), "build.finished",
         "build 43 failed: only a passed build deploys"),
        (deploying(["edge-a"]), build_finished(number=44, state="canceled"), "build.finished",
         "build 44 canceled: only a passed build deploys"),
        ({"deploy_pipelines": {"another-pipeline": ["edge-a"]}}, build_finished(number=45), "build.finished",
         "pipeline great-pipeline is not set to deploy (deploy_pipelines)"),
        ({}, build_finished(number=46), "build.finished",
         "pipeline great-pipeline is not set to deploy (deploy_pipelines)"),
        (deploying(["edge-a"]), build_finished(number=47, state="running").replace(b"build.finished", b"build.running"),
         "build.running", "build.running: only build.finished can trigger a deploy"),
    ],
)  # fmt: skip
def test_other_builds_pipelines_and_events_are_acknowledged_and_ignored(
    gateways, client, django_capture_on_commit_callbacks, settings, body, event_name, ignored
):
    receiver("buildkite", BUILDKITE_TOKEN, settings=settings)

    with django_capture_on_commit_callbacks(execute=True):
        event = deliver(client, body, event=event_name)

    event.refresh_from_db()
    assert event.state == EventState.DONE and event.outcome["ignored"] == ignored
    assert not Deployment.objects.exists() and not PolicySnapshot.objects.exists()


def test_a_ping_is_acknowledged_and_ignored(db, client, django_capture_on_commit_callbacks):
    receiver("buildkite", BUILDKITE_TOKEN, settings=deploying("all"))
    ping = payload("webhook_ping.docs-skeleton.json")
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, URL, ping, buildkite_headers(ping, event="ping")).status_code == 200
    event = InboundEvent.objects.get()
    assert (event.state, event.outcome) == (
        EventState.DONE,
        {"ignored": "ping: only build.finished can trigger a deploy"},
    )


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (deploying(["edge-a", "edge-q"]), "deploy_pipelines names no gateway edge-q"),
        (deploying(["edge-z"]), "deploy of pipeline great-pipeline: Gateway edge-z has no deploy directory"),
        ({"deploy_pipelines": {PIPELINE: "edge-a"}}, 'deploy_pipelines maps pipeline slugs to gateway names or "all"'),
        ({"deploy_pipelines": [PIPELINE]}, 'deploy_pipelines maps pipeline slugs to gateway names or "all"'),
    ],
)
def test_settings_naming_what_cannot_be_deployed_fail_the_event_readably(
    gateways, client, django_capture_on_commit_callbacks, settings, error
):
    receiver("buildkite", BUILDKITE_TOKEN, settings=settings)

    with django_capture_on_commit_callbacks(execute=True):
        event = deliver(client, build_finished(number=48))

    event.refresh_from_db()
    assert event.state == EventState.FAILED and error in event.last_error, event.last_error
    assert not Deployment.objects.exists()

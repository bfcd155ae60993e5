"""The deployments API through DRF's client: lists (filters, cursor pages, a constant number of
queries), one deployment with its steps, messages and proof summary, and deploy requests (202 with
the queued deployments, coalesced onto a queued one, all or none, refused readably); the last test
deploys through the API, the task and the pipeline to a real HAProxy and lighttpd."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.live import free_loopback_port
from apps.gateways.models import Deployment
from apps.policies import services as policies
from apps.policies.models import Gateway, PolicySnapshot
from tests.factories import GatewayFactory, RoleFactory
from tests.support.celery_worker import celery_reconfigured
from tests.support.deploy import Stage
from tests.support.problems import problem

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("api-test")
DEPLOYMENTS = "/api/v1/deployments"
DEPLOY = f"{DEPLOYMENTS}/deploy"


@pytest.fixture
def editor(as_role):
    return as_role("editor", "deploy-bot")


@pytest.fixture
def auditor(as_role):
    return as_role("auditor")


def _snapshot(number: int) -> PolicySnapshot:
    """A snapshot row to point deployments at (the list tests read rows, they do not deploy them)."""
    return PolicySnapshot.objects.create(
        sha256=f"{number:064x}", content="{}", created_by="test", route_count=0, identity_count=0
    )


def _deployment(gateway, snapshot, **fields) -> Deployment:
    return Deployment.objects.create(
        gateway=gateway, snapshot=snapshot, trigger=fields.pop("trigger", "api"), actor="service:x", **fields
    )


# Reading ---------------------------------------------------------------------------------------


@pytest.fixture
def history():
    """Three deployments of two gateways, a day apart: live (cli), failed (api), queued (schedule)."""
    a, b = GatewayFactory(name="edge-a"), GatewayFactory(name="edge-b")
    live = _deployment(a, _snapshot(1), trigger="cli", state="live", finished_at=timezone.now())
    failed = _deployment(b, _snapshot(2), state="failed")
    queued = _deployment(a, _snapshot(3), trigger="schedule", previous=live)
    now = timezone.now()
    for days_ago, deployment in ((2, live), (1, failed), (0, queued)):
        Deployment.objects.filter(pk=deployment.pk).update(created_at=now - timedelta(days=days_ago))
    return {"live": live, "failed": failed, "queued": queued, "now": now}


def test_deployments_are_listed_newest_first_and_filtered(auditor, history):
    live, failed, queued = history["live"].pk, history["failed"].pk, history["queued"].pk

    def ids(query: str = "") -> list[int]:
        response = auditor.get(f"{DEPLOYMENTS}?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [queued, failed, live]
    assert ids("gateway=edge-a") == [queued, live]
    assert ids("state=failed") == [failed]
    assert ids("trigger=schedule") == [queued]
    assert ids("gateway=edge-a&state=live") == [live]
    yesterday = (history["now"] - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert ids(f"created_after={yesterday}") == [queued, failed]  # at or after
    assert ids(f"created_before={yesterday}") == [live]  # strictly before
    # offsets ISO 8601 allows and PostgreSQL does not (past ±15:59) are the same instant in UTC
    far_west = (history["now"] - timedelta(days=1)).astimezone(timezone.get_fixed_timezone(-(23 * 60 + 32)))
    assert ids(urlencode({"created_before": far_west.isoformat()})) == [live]
    row = auditor.get(f"{DEPLOYMENTS}?state=queued").json()["results"][0]
    assert row == {
        "id": queued,
        "url": f"http://testserver{DEPLOYMENTS}/{queued}",
        "gateway": "edge-a",
        "snapshot": f"{3:064x}",
        "snapshot_id": history["queued"].snapshot_id,
        "trigger": "schedule",
        "actor": "service:x",
        "state": "queued",
        "rendered_sha256": "",
        "previous": live,
        "created_at": row["created_at"],
        "finished_at": None,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("gateway=nowhere", "gateway"),
        ("state=lost", "state"),
        ("trigger=magic", "trigger"),
        ("created_after=x", "created_after"),
        ("created_before=0001-01-01T00:30:00%2B01:00", "created_before"),  # before year 1 in UTC
    ],
)
def test_an_unknown_filter_value_is_a_400_in_the_one_shape(auditor, history, query, field):
    error = problem(auditor.get(f"{DEPLOYMENTS}?{query}"), 400)
    assert set(error["errors"]) == {field}


def test_cursor_pages_walk_every_deployment_once_newest_first(auditor):
    gateway = GatewayFactory()
    made = [_deployment(gateway, _snapshot(number)).pk for number in range(5)]
    seen, url = [], f"{DEPLOYMENTS}?page_size=2"
    while url:
        page = auditor.get(url).json()
        assert set(page) == {"next", "previous", "results"} and len(page["results"]) <= 2
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == made[::-1]


def test_a_deployment_shows_its_steps_messages_and_proof_summary(auditor, history):
    started = timezone.now().isoformat()
    proof = {"basis": "b" * 64, "scope": "full: asked for", "requests": 1234, "tokens": ["eyJ.never.shown"]}
    steps = [{"step": "render", "started_at": started, "seconds": 0.25, "ok": True}]
    messages = [{"at": started, "level": "info", "text": "rendered 3 files"}]
    Deployment.objects.filter(pk=history["live"].pk).update(
        proof=proof, steps=steps, messages=messages, rendered_sha256="r" * 64
    )

    response = auditor.get(f"{DEPLOYMENTS}/{history['live'].pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["proof"] == {"basis": "b" * 64, "scope": "full: asked for", "requests": 1234}
    assert b"eyJ.never.shown" not in response.content  # only the summary, whatever else the row holds
    assert body["steps"] == steps and body["messages"] == messages
    assert (body["gateway"], body["snapshot"], body["rendered_sha256"], body["state"]) == (
        "edge-a",
        f"{1:064x}",
        "r" * 64,
        "live",
    )
    assert body["finished_at"] is not None and body["previous"] is None
    assert auditor.get(f"{DEPLOYMENTS}/{history['queued'].pk}").json()["proof"] is None  # not proven yet
    assert problem(auditor.get(f"{DEPLOYMENTS}/999999"), 404)["code"] == "not_found"


def _rows(count: int) -> None:
    """``count`` deployments, each of its own gateway and snapshot, each after a previous one."""
    previous = None
    for number in range(count):
        previous = _deployment(GatewayFactory(), _snapshot(1000 * count + number), previous=previous)


@pytest.mark.parametrize("path", [DEPLOYMENTS, f"{DEPLOYMENTS}?state=queued&trigger=api"])
def test_a_list_costs_the_same_queries_for_2_rows_as_for_20(auditor, path):
    auditor.get(path)  # the token's first use records last_used_at once
    counts = []
    for rows in (2, 20):
        _rows(rows)
        with CaptureQueriesContext(connection) as queries:
            response = auditor.get(path)
        assert len(response.json()["results"]) == Deployment.objects.count()
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


# Deploy requests -------------------------------------------------------------------------------


@pytest.fixture
def gateways(tmp_path):
    """edge-a and edge-b (deployable), manual-edge (no deploy directory), and a snapshot to deploy."""
    made = {
        name: GatewayFactory(name=name, deploy_directory=str(tmp_path / name) if name != "manual-edge" else "")
        for name in ("edge-a", "edge-b", "manual-edge")
    }
    made["snapshot"] = policies.snapshot_build(actor=ACTOR)
    return made


def test_a_deploy_request_answers_202_with_the_queued_deployment_its_location_and_an_audit_event(
    editor, auditor, gateways, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = editor.post(DEPLOY, {"gateways": ["edge-a"]}, HTTP_X_REQUEST_ID="req-deploy-1")

    assert response.status_code == 202, response.content
    deployment = Deployment.objects.get()
    url = f"http://testserver{DEPLOYMENTS}/{deployment.pk}"
    assert response.json() == {
        "deployments": [{"id": deployment.pk, "url": url, "gateway": "edge-a", "state": "queued"}]
    }
    assert response["Location"] == url
    assert len(callbacks) == 1  # the task is handed over once the row is committed
    assert (deployment.gateway, deployment.snapshot, deployment.trigger, deployment.actor) == (
        gateways["edge-a"],
        gateways["snapshot"],
        DeploymentTrigger.API,
        "service:deploy-bot",
    )
    event = AuditEvent.objects.get(action="deployment.create")
    assert (event.actor, event.object_id, event.request_id) == (
        "service:deploy-bot",
        str(deployment.pk),
        "req-deploy-1",
    )
    shown = auditor.get(response["Location"]).json()
    assert (shown["state"], shown["trigger"], shown["actor"]) == ("queued", "api", "service:deploy-bot")


def test_a_request_without_gateways_deploys_every_deployable_one_by_name(editor, gateways):
    for body in ({}, {"gateways": []}):
        response = editor.post(DEPLOY, body)
        assert response.status_code == 202, response.content
        assert [row["gateway"] for row in response.json()["deployments"]] == ["edge-a", "edge-b"]
        assert "Location" not in response  # more than one: each has its url
    assert sorted(Deployment.objects.values_list("gateway__name", flat=True)) == ["edge-a", "edge-b"]  # joined


def test_a_second_request_joins_the_queued_deployment_with_its_snapshot(editor, gateways):
    first = editor.post(DEPLOY, {"gateways": ["edge-a"]}).json()  # on_commit never fires here: it stays queued
    RoleFactory(slug="newer")
    newer = policies.snapshot_build(actor=ACTOR)
    assert newer != gateways["snapshot"]

    again = editor.post(DEPLOY, {"gateways": ["edge-a", "edge-a"], "snapshot": newer.sha256})

    assert again.status_code == 202 and again.json() == first
    assert again["Location"] == first["deployments"][0]["url"]
    assert Deployment.objects.get().snapshot == newer
    assert AuditEvent.objects.filter(action="deployment.update", object_id=str(first["deployments"][0]["id"])).exists()


def test_an_explicit_snapshot_is_deployed_instead_of_the_newest(editor, gateways):
    oldest = gateways["snapshot"]
    RoleFactory(slug="newer")
    policies.snapshot_build(actor=ACTOR)

    response = editor.post(DEPLOY, {"gateways": ["edge-b"], "snapshot": oldest.sha256})

    assert response.status_code == 202
    assert Deployment.objects.get(pk=response.json()["deployments"][0]["id"]).snapshot == oldest


@pytest.mark.parametrize(
    ("body", "field", "code", "detail"),
    [
        ({"gateways": ["edge-a", "nope"]}, "gateways", "does_not_exist", "There is no gateway named 'nope'."),
        (
            {"gateways": ["edge-a", "manual-edge"]},
            "gateways",
            "not_deployable",
            "Gateway manual-edge has no deploy directory: set one to make it deployable.",
        ),
        ({"gateways": "edge-a"}, "gateways", "not_a_list", "Expected a list of items"),
        (
            {"snapshot": "f" * 64},
            "snapshot",
            "does_not_exist",
            f"There is no policy snapshot with sha256 '{'f' * 64}'.",
        ),
        ({"snapshot": None}, "snapshot", "null", "This field may not be null."),
    ],
)
def test_a_refused_request_names_what_is_wrong_and_queues_nothing(editor, gateways, body, field, code, detail):
    error = problem(editor.post(DEPLOY, body), 400)

    assert (error["code"], set(error["errors"])) == (code, {field})
    assert error["errors"][field][0].startswith(detail) and detail in error["detail"]
    assert not Deployment.objects.exists()


def test_with_no_snapshot_or_no_deployable_gateway_nothing_is_queued(editor, tmp_path):
    gateway = GatewayFactory(name="edge-a", deploy_directory=str(tmp_path))

    no_snapshot = problem(editor.post(DEPLOY, {"gateways": ["edge-a"]}), 400)

    assert (no_snapshot["code"], no_snapshot["errors"]) == (
        "no_snapshot",
        {"snapshot": ["There is no policy snapshot to deploy yet; build one first."]},
    )
    policies.snapshot_build(actor=ACTOR)
    Gateway.objects.filter(pk=gateway.pk).update(deploy_directory="")
    nothing = problem(editor.post(DEPLOY, {}), 400)
    assert (nothing["code"], nothing["errors"]) == (
        "not_deployable",
        {"gateways": ["No gateway has a deploy directory: set one to make a gateway deployable."]},
    )
    assert not Deployment.objects.exists()


@pytest.mark.parametrize("role", ["auditor", "service"])
def test_readers_may_not_request_deploys(as_role, gateways, role):
    reader = as_role(role)

    error = problem(reader.post(DEPLOY, {"gateways": ["edge-a"]}), 403)

    assert error["code"] == "permission_denied" and "admin, editor" in error["detail"]
    assert reader.get(DEPLOYMENTS).status_code == 200
    assert not Deployment.objects.exists()


def test_a_deploy_requested_while_the_broker_is_down_stays_queued_with_a_warning(
    editor, auditor, gateways, django_capture_on_commit_callbacks
):
    saved = celery_reconfigured(broker_url=f"redis://127.0.0.1:{free_loopback_port()}/0", task_always_eager=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = editor.post(DEPLOY, {"gateways": ["edge-a"]})
    finally:
        celery_reconfigured(**saved)

    assert response.status_code == 202
    shown = auditor.get(response["Location"]).json()
    assert shown["state"] == "queued"
    assert shown["messages"][-1]["level"] == "warning"
    assert "not handed to a worker: the broker is unreachable" in shown["messages"][-1]["text"]
    again = editor.post(DEPLOY, {"gateways": ["edge-a"]})
    assert again.json()["deployments"][0]["id"] == shown["id"] and Deployment.objects.count() == 1


# The whole way ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_deploy_requested_through_the_api_goes_live_on_the_running_proxy(
    stage: Stage, editor, auditor, django_capture_on_commit_callbacks
):
    """The request commits a queued row; the (eager) task runs the pipeline on it; the proxy serves
    the new snapshot, and the deployment says so through the API."""
    assert stage.status("/b/page") == 404
    body = {"gateways": [stage.gateway.name], "snapshot": stage.next_snapshot.sha256}

    with django_capture_on_commit_callbacks(execute=True):
        response = editor.post(DEPLOY, body)

    assert response.status_code == 202, response.content
    shown = auditor.get(response["Location"]).json()
    assert shown["state"] == DeploymentState.LIVE, shown["messages"]
    assert [step["step"] for step in shown["steps"]] == ["render", "validate", "prove", "push", "reload", "probe"]
    assert all(step["ok"] for step in shown["steps"])
    assert shown["previous"] == stage.first.pk and shown["snapshot"] == stage.next_snapshot.sha256
    assert shown["proof"]["requests"] > 0 and shown["proof"]["basis"]
    assert len(shown["rendered_sha256"]) == 64 and shown["finished_at"]
    assert stage.status("/b/page") == 200
    listed = auditor.get(f"{DEPLOYMENTS}?gateway={stage.gateway.name}&state=live").json()["results"]
    assert [row["id"] for row in listed] == [shown["id"], stage.first.pk]

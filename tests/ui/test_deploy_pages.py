"""The deploy pages: the semantic diff of the newest snapshot against what is live, requests and
their approval (two-person rule), rollback as a request for an older snapshot, and a deployment's
progress polling until it is final."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.core.actors import Actor
from apps.gateways.choices import DeploymentState, DeploymentTrigger, DeployRequestState
from apps.gateways.models import Deployment, DeployRequest
from apps.policies import services as policies
from apps.policies.models import PolicySnapshot
from tests.factories import DeploymentFactory, GroupFactory, IdentityFactory
from tests.support.deploy_scene import ADMIN_ROUTE, deploy_scene

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(tmp_path):
    return deploy_scene(deploy_directory=str(tmp_path / "edge"))


def _signed_in(client, name: str, role: str):
    user = get_user_model().objects.create_user(name, first_name=name.capitalize())
    user.groups.add(Group.objects.get_or_create(name=f"policyhub-{role}")[0])
    client.force_login(user)
    return user


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_the_deploy_page_says_who_gains_access_to_what_against_the_live_snapshot(client, scene):
    _signed_in(client, "aud", "auditor")

    page = _text(client.get("/ui/deploy/"))

    assert "1 identity gains access" in page and "0 identities lose access" in page
    gain = re.search(r'<div class="shift gain">(.*?)</div>', page)[1]
    assert "1 identity gains access</strong> to 1 route" in gain
    assert f"<code>{ADMIN_ROUTE}</code>" in gain and '<span title="okta:ann">ann@acme.test</span>' in gain
    assert f'live as <a href="/ui/deployments/{scene.live.pk}/">' in page
    assert "Build a snapshot now" not in page  # the newest snapshot holds the policy as it is
    assert "Request deploy" not in page  # auditors do not request


def test_a_policy_changed_since_the_newest_snapshot_offers_to_build_one(client, scene):
    _signed_in(client, "erin", "editor")
    cy = IdentityFactory(source=scene.ann.source, external_id="cy")
    policies.role_mapping_create(actor=Actor.system("t"), role=scene.role, match_kind="identity", identity=cy)

    page = _text(client.get("/ui/deploy/"))
    assert "The policy changed since this snapshot was built" in page and "Build a snapshot now" in page

    built = client.post("/ui/deploy/snapshot/")

    assert (built.status_code, built["Location"]) == (302, "/ui/deploy/")
    assert PolicySnapshot.objects.count() == 3
    assert "Build a snapshot now" not in _text(client.get("/ui/deploy/"))


def test_an_editor_requests_and_another_admin_approves_which_queues_the_deployments(client, scene):
    _signed_in(client, "erin", "editor")
    asked = client.post(
        "/ui/deploy/requests/new/", {"snapshot": scene.after.sha256, "gateways": ["edge"], "reason": "ann on call"}
    )
    deploy_request = DeployRequest.objects.get()
    assert asked["Location"] == f"/ui/deploy/requests/{deploy_request.pk}/"
    page = _text(client.get(asked["Location"]))
    assert "Awaiting approval" in page and f"<code>{ADMIN_ROUTE}</code>" in page and "Approve and deploy" not in page

    _signed_in(client, "adam", "admin")
    approved = client.post(f"/ui/deploy/requests/{deploy_request.pk}/approve/", {"note": "go"}, follow=True)

    deploy_request.refresh_from_db()
    (deployment,) = deploy_request.deployments.all()
    assert deploy_request.state == DeployRequestState.APPROVED
    assert (deployment.trigger, deployment.snapshot, deployment.state) == (
        DeploymentTrigger.UI, scene.after, DeploymentState.QUEUED,
    )  # fmt: skip
    page = _text(approved)
    assert f"Deploy request {deploy_request.pk} approved." in page
    assert f'href="/ui/deployments/{deployment.pk}/">#{deployment.pk} to edge</a>' in page


def test_an_admin_approving_their_own_request_is_refused_with_the_reason(client, scene, settings):
    settings.POLICYHUB_DEPLOY_TWO_PERSON = True
    _signed_in(client, "adam", "admin")
    client.post("/ui/deploy/requests/new/", {"snapshot": scene.after.sha256, "gateways": ["edge"]})
    deploy_request = DeployRequest.objects.get()
    page = _text(client.get(f"/ui/deploy/requests/{deploy_request.pk}/"))
    assert "another admin must approve it (two-person rule)" in page and "Approve and deploy" not in page

    refused = client.post(f"/ui/deploy/requests/{deploy_request.pk}/approve/", {"note": ""}, follow=True)

    assert "Not approved: You requested this deploy: another admin must approve it (two-person rule)." in _text(refused)
    deploy_request.refresh_from_db()
    assert deploy_request.state == DeployRequestState.REQUESTED
    assert not Deployment.objects.filter(trigger=DeploymentTrigger.UI).exists()


def test_an_editor_cannot_approve_and_an_auditor_cannot_request(client, scene):
    editor = _signed_in(client, "erin", "editor")
    client.post("/ui/deploy/requests/new/", {"snapshot": scene.after.sha256, "gateways": ["edge"]})
    deploy_request = DeployRequest.objects.get(requested_by=editor)

    assert client.post(f"/ui/deploy/requests/{deploy_request.pk}/approve/").status_code == 403
    _signed_in(client, "aud", "auditor")
    assert (
        client.post("/ui/deploy/requests/new/", {"snapshot": scene.after.sha256, "gateways": ["edge"]}).status_code
        == 403
    )

    deploy_request.refresh_from_db()
    assert deploy_request.state == DeployRequestState.REQUESTED and DeployRequest.objects.count() == 1


def test_an_admin_rejects_and_nothing_is_deployed(client, scene):
    _signed_in(client, "erin", "editor")
    client.post("/ui/deploy/requests/new/", {"snapshot": scene.after.sha256, "gateways": ["edge"]})
    deploy_request = DeployRequest.objects.get()
    _signed_in(client, "adam", "admin")

    client.post(f"/ui/deploy/requests/{deploy_request.pk}/reject/", {"note": "freeze"})

    deploy_request.refresh_from_db()
    assert (deploy_request.state, deploy_request.decision_note) == (DeployRequestState.REJECTED, "freeze")
    assert not deploy_request.deployments.exists()


def test_rolling_back_requests_the_older_snapshot_with_its_diff(client, scene):
    _signed_in(client, "erin", "editor")
    newer = DeploymentFactory(gateway=scene.gateway, snapshot=scene.after, previous=scene.live)

    history = _text(client.get(f"/ui/deploy/gateways/{scene.gateway.pk}/"))
    link = re.search(r'<a href="([^"]+)">Roll back to this snapshot</a>', history)[1].replace("&amp;", "&")
    assert link == f"/ui/deploy/requests/new/?snapshot={scene.before.sha256}&gateways=edge"
    assert history.count("Roll back to this snapshot") == 1  # not for what is live now
    assert history.count(">Went live</span>") == 1 and history.count(">live now</span>") == 1
    form = _text(client.get(link))
    assert "deploying it rolls the chosen gateways back" in form
    loss = re.search(r'<div class="shift loss">(.*?)</div>', form)[1]
    assert '<span title="okta:ann">ann@acme.test</span>' in loss and f"<code>{ADMIN_ROUTE}</code>" in loss
    assert f'live as <a href="/ui/deployments/{newer.pk}/">' in form

    client.post(link, {"snapshot": scene.before.sha256, "gateways": ["edge"], "reason": "roll back"})

    rollback = DeployRequest.objects.get()
    assert (rollback.snapshot, list(rollback.gateways.all())) == (scene.before, [scene.gateway])


def _progress(client, deployment) -> str:
    return _text(client.get(f"/ui/deployments/{deployment.pk}/?partial=progress", HTTP_HX_REQUEST="true"))


def test_a_running_deployment_polls_its_progress_every_2_seconds_and_stops_once_final(client, scene):
    _signed_in(client, "aud", "auditor")
    running = DeploymentFactory(
        gateway=scene.gateway, snapshot=scene.after, state=DeploymentState.PROVING, finished_at=None,
        steps=[{"step": "render", "started_at": "2026-01-01T10:00:00+00:00", "seconds": 0.4, "ok": True},
               {"step": "validate", "started_at": "2026-01-01T10:00:01+00:00", "seconds": 1.2, "ok": True}],
        messages=[{"at": "2026-01-01T10:00:01+00:00", "level": "info", "text": "validate: haproxy -c passed"}],
    )  # fmt: skip

    partial = _progress(client, running)

    assert partial.strip().startswith('<section id="progress"')  # the partial alone, swapped in place
    assert 'hx-trigger="every 2s"' in partial and 'hx-swap="outerHTML"' in partial
    assert re.search(r'class="step done"><span class="name">render</span>', partial)
    assert re.search(r'class="step running"><span class="name">prove</span>', partial)
    assert re.search(r'class="step pending"><span class="name">push</span>', partial)
    assert "validate: haproxy -c passed" in partial

    running.state, running.finished_at = DeploymentState.LIVE, timezone.now()
    running.steps = [
        *running.steps,
        {"step": "prove", "started_at": "2026-01-01T10:00:02+00:00", "seconds": 3, "ok": True},
    ]
    running.save()
    final = _progress(client, running)

    assert "hx-trigger" not in final and "hx-get" not in final
    assert re.search(r'class="step done"><span class="name">prove</span>', final)
    assert 'class="state live">Live</span>' in final


def test_the_rendered_config_diff_of_a_gateway_without_a_deploy_directory_says_so(client, scene):
    _signed_in(client, "erin", "editor")
    scene.gateway.deploy_directory = ""
    scene.gateway.save()

    answer = _text(client.post(f"/ui/deploy/gateways/{scene.gateway.pk}/config-diff/", HTTP_HX_REQUEST="true"))

    assert answer.strip().startswith('<p class="error" role="alert">edge has no deploy directory')


def test_a_large_group_shows_its_first_identities_by_name_and_counts_the_rest(client, scene):
    _signed_in(client, "aud", "auditor")
    staff = GroupFactory(source=scene.ann.source, name="staff")
    for number in range(30):
        person = IdentityFactory(
            source=scene.ann.source, external_id=f"p{number:02}", username=f"p{number:02}@acme.test"
        )
        person.groups.add(staff)
    policies.role_mapping_create(actor=Actor.system("t"), role=scene.role, match_kind="group", group=staff)
    policies.snapshot_build(actor=Actor.system("t"))

    page = _text(client.get("/ui/deploy/"))

    # ann and the 30 (new to the gateway) gain the same route: one group
    group = re.search(r'<div class="shift gain"> ?<p><strong>31 identities gain access</strong>(.*?)</div>', page)[1]
    assert group.count("@acme.test</span>") == 25 and "and 6 more" in group
    assert '<span title="okta:ann">ann@acme.test</span>, <span title="okta:p00">p00@acme.test</span>' in group

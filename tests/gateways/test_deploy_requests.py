"""Deploy requests: editors and admins ask, admins decide, nobody approves their own request while
the two-person rule is on, and an approval queues the deployments like the API's deploy does."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.gateways.choices import DeploymentState, DeploymentTrigger, DeployRequestState
from apps.gateways.deploy_requests import (
    deploy_request_approve,
    deploy_request_cancel,
    deploy_request_create,
    deploy_request_reject,
)
from apps.gateways.models import Deployment
from tests.support.deploy_scene import deploy_scene

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(tmp_path):
    return deploy_scene(deploy_directory=str(tmp_path / "edge"))


def _user(name: str, role: str):
    user = get_user_model().objects.create_user(name)
    user.groups.add(Group.objects.get_or_create(name=f"policyhub-{role}")[0])
    return user


def _ask(scene, user):
    return deploy_request_create(
        snapshot=scene.after, gateways=[scene.gateway], user=user, actor=Actor.for_user(user), reason="ann on call"
    )


def test_an_approval_by_another_admin_queues_the_deployments_and_links_them(scene):
    editor, admin = _user("erin", "editor"), _user("adam", "admin")
    asked = _ask(scene, editor)

    deploy_request_approve(deploy_request=asked, user=admin, actor=Actor.for_user(admin), note="ok")

    asked.refresh_from_db()
    (deployment,) = asked.deployments.all()
    assert (asked.state, asked.decided_by, asked.decision_note) == (DeployRequestState.APPROVED, admin, "ok")
    assert (deployment.gateway, deployment.snapshot, deployment.state) == (
        scene.gateway, scene.after, DeploymentState.QUEUED,
    )  # fmt: skip
    assert (deployment.trigger, deployment.actor, deployment.previous) == (
        DeploymentTrigger.UI,
        "user:adam",
        scene.live,
    )
    approved = AuditEvent.objects.get(action="deployrequest.approved", object_id=str(asked.pk))
    assert (approved.actor, approved.after["deployments"]) == ("user:adam", [deployment.pk])
    assert AuditEvent.objects.get(action="deployrequest.create", object_id=str(asked.pk)).actor == "user:erin"


def test_the_requester_cannot_approve_their_own_request_while_the_two_person_rule_is_on(scene, settings):
    settings.POLICYHUB_DEPLOY_TWO_PERSON = True
    admin = _user("adam", "admin")
    asked = _ask(scene, admin)

    with pytest.raises(ValidationError, match=r"another admin must approve it \(two-person rule\)"):
        deploy_request_approve(deploy_request=asked, user=admin, actor=Actor.for_user(admin))

    asked.refresh_from_db()
    assert asked.state == DeployRequestState.REQUESTED and not asked.deployments.exists()
    assert not Deployment.objects.exclude(pk=scene.live.pk).exists()


def test_with_the_two_person_rule_off_an_admin_approves_their_own_request(scene, settings):
    settings.POLICYHUB_DEPLOY_TWO_PERSON = False
    admin = _user("adam", "admin")
    asked = _ask(scene, admin)

    deploy_request_approve(deploy_request=asked, user=admin, actor=Actor.for_user(admin))

    assert asked.state == DeployRequestState.APPROVED and asked.deployments.count() == 1


def test_an_auditor_cannot_request_and_an_editor_cannot_decide(scene):
    auditor, editor = _user("aud", "auditor"), _user("erin", "editor")
    with pytest.raises(PermissionDenied):
        _ask(scene, auditor)
    asked = _ask(scene, editor)
    other_editor = _user("eddy", "editor")

    with pytest.raises(PermissionDenied):
        deploy_request_approve(deploy_request=asked, user=other_editor, actor=Actor.for_user(other_editor))
    with pytest.raises(PermissionDenied):
        deploy_request_reject(deploy_request=asked, user=other_editor, actor=Actor.for_user(other_editor))

    asked.refresh_from_db()
    assert asked.state == DeployRequestState.REQUESTED


def test_a_rejected_request_deploys_nothing_and_cannot_be_approved_afterwards(scene):
    editor, admin, other = _user("erin", "editor"), _user("adam", "admin"), _user("ada", "admin")
    asked = _ask(scene, editor)

    deploy_request_reject(deploy_request=asked, user=admin, actor=Actor.for_user(admin), note="not on a Friday")
    with pytest.raises(ValidationError, match="already rejected"):
        deploy_request_approve(deploy_request=asked, user=other, actor=Actor.for_user(other))

    asked.refresh_from_db()
    assert (asked.state, asked.decision_note) == (DeployRequestState.REJECTED, "not on a Friday")
    assert not Deployment.objects.exclude(pk=scene.live.pk).exists()
    assert AuditEvent.objects.filter(action="deployrequest.rejected", object_id=str(asked.pk)).count() == 1


def test_only_the_requester_cancels(scene):
    editor, other = _user("erin", "editor"), _user("eddy", "editor")
    asked = _ask(scene, editor)

    with pytest.raises(PermissionDenied):
        deploy_request_cancel(deploy_request=asked, user=other, actor=Actor.for_user(other))
    deploy_request_cancel(deploy_request=asked, user=editor, actor=Actor.for_user(editor))

    assert asked.state == DeployRequestState.CANCELLED


def test_a_gateway_without_a_deploy_directory_cannot_be_requested(scene):
    scene.gateway.deploy_directory = ""
    scene.gateway.save()
    with pytest.raises(ValidationError, match="Not deployable"):
        _ask(scene, _user("erin", "editor"))

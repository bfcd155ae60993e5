"""Key rotation on demand and on schedule, and drift detection, on gateways deployed to real proxies."""

import io
import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.mint import mint_edge_token
from apps.credentials.models import SigningKey
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.drift import gateway_drift_check
from apps.gateways.models import Deployment
from apps.gateways.reload import reload_proxy
from apps.gateways.selectors import gateways_due_for_key_renewal
from apps.gateways.services import deploy_gateway, deployment_run, gateways_keys_renew
from apps.gateways.tasks import gateways_drift_check_task, gateways_keys_renew_task
from apps.gateways.transports import LocalTransport
from policyhub.celery import app
from tests.factories import IdentityFactory
from tests.support.deploy import ACTOR

pytestmark = pytest.mark.slow


def _active_kid(gateway) -> str:
    return SigningKey.objects.get(gateway=gateway, purpose=KeyPurpose.EDGE_TOKEN, state=KeyState.ACTIVE).kid


def _drift_audits(gateway) -> list[str]:
    events = AuditEvent.objects.filter(object_type="policies.gateway", object_id=str(gateway.pk))
    return list(events.filter(action__startswith="gateway.drift").order_by("id").values_list("action", flat=True))


# Rotation ------------------------------------------------------------------------------------


def test_rotate_keys_switches_the_minter_to_a_key_proven_live_and_keeps_old_tokens_working(stage):
    identity = IdentityFactory()
    before = mint_edge_token(identity=identity, gateway=stage.gateway)
    out = io.StringIO()

    call_command("rotate_keys", stage.gateway.name, stdout=out, no_color=True)

    rotation = Deployment.objects.exclude(pk=stage.first.pk).get()
    assert rotation.state == DeploymentState.LIVE and rotation.snapshot == stage.first.snapshot
    new_kid = _active_kid(stage.gateway)
    assert new_kid != before.kid
    assert new_kid in rotation.accepted_kids[KeyPurpose.EDGE_TOKEN]  # published by the release before it signed
    assert SigningKey.objects.get(kid=before.kid).state == KeyState.RETIRING
    assert stage.status("/private/x", before.token) == 200  # within its overlap
    assert stage.status("/private/x", mint_edge_token(identity=identity, gateway=stage.gateway).token) == 200
    text = out.getvalue()
    assert "Keys the proxies accept" in text and new_kid in text
    for key in SigningKey.objects.all():
        assert key.private_material.reveal() not in text


def test_rotate_keys_retire_now_refuses_tokens_signed_by_the_replaced_key(stage):
    identity = IdentityFactory()
    compromised = mint_edge_token(identity=identity, gateway=stage.gateway)

    call_command("rotate_keys", stage.gateway.name, "--retire-now", stdout=io.StringIO())

    deployments = Deployment.objects.exclude(pk=stage.first.pk).order_by("id")
    assert [d.state for d in deployments] == [DeploymentState.LIVE, DeploymentState.LIVE]
    assert SigningKey.objects.get(kid=compromised.kid).state == KeyState.RETIRED
    assert compromised.kid not in deployments.last().accepted_kids[KeyPurpose.EDGE_TOKEN]
    assert stage.status("/private/x", compromised.token) == 401
    assert stage.status("/private/x", mint_edge_token(identity=identity, gateway=stage.gateway).token) == 200


def test_a_gateway_is_due_for_renewal_before_a_key_expires_or_a_day_after_one_stopped_signing(stage):
    now = timezone.now()
    assert gateways_due_for_key_renewal(now=now) == []
    # the install turned the fixture's first key 'retiring': it must leave the proxy a day later
    assert gateways_due_for_key_renewal(now=now + timedelta(hours=25)) == [stage.gateway]
    # renewal starts 7 days before the signing key expires
    signing = SigningKey.objects.filter(gateway=stage.gateway, state=KeyState.ACTIVE)
    signing.update(not_after=now + timedelta(days=8))
    assert gateways_due_for_key_renewal(now=now) == []
    signing.update(not_after=now + timedelta(days=6))
    assert gateways_due_for_key_renewal(now=now) == [stage.gateway]


def test_the_renewal_task_queues_a_scheduled_deploy_of_each_due_gateway(stage, django_capture_on_commit_callbacks):
    SigningKey.objects.filter(gateway=stage.gateway, state=KeyState.ACTIVE).update(
        not_after=timezone.now() + timedelta(days=1)
    )
    # The enqueued task is not sent: its work, deployment_run, is run here as a worker would.
    with django_capture_on_commit_callbacks() as enqueued:
        assert gateways_keys_renew_task() == 1

    renewal = Deployment.objects.exclude(pk=stage.first.pk).get()
    assert len(enqueued) == 1 and renewal.state == DeploymentState.QUEUED
    assert renewal.trigger == DeploymentTrigger.SCHEDULE
    assert deployment_run(deployment_id=renewal.pk).state == DeploymentState.LIVE, renewal.messages
    assert gateways_keys_renew(actor=ACTOR) == []  # the fresh keys are far from expiry


def test_the_beat_schedule_checks_drift_and_renews_keys():
    schedule = app.conf.beat_schedule
    assert schedule["gateways-drift-check"]["task"] == gateways_drift_check_task.name
    assert schedule["gateways-keys-renew"]["task"] == gateways_keys_renew_task.name
    assert schedule["gateways-drift-check"]["schedule"].minute == set(range(0, 60, 5))


# Drift ---------------------------------------------------------------------------------------


def test_a_gateway_running_its_last_deployment_has_no_drift(stage):
    drift = gateway_drift_check(gateway=stage.gateway, actor=ACTOR)

    assert drift.findings == [] and not drift.drifted
    assert drift.deployment == stage.first
    assert _drift_audits(stage.gateway) == []


def test_a_file_edited_on_the_gateway_is_drift_audited_once_and_resolved_when_restored(stage):
    main = {"haproxy": "haproxy.cfg", "lighttpd": "lighttpd.conf"}[stage.gateway.kind]
    path = stage.directory / "current" / main
    original = path.read_bytes()
    path.write_bytes(original + b"\n# edited by hand\n")

    drifted = gateway_drift_check(gateway=stage.gateway, actor=ACTOR)
    again = gateway_drift_check(gateway=stage.gateway, actor=ACTOR)
    path.write_bytes(original)
    resolved = gateway_drift_check(gateway=stage.gateway, actor=ACTOR)

    assert drifted.findings == [f"{main} was changed on the gateway"]
    assert again.findings == drifted.findings
    assert resolved.findings == []
    assert _drift_audits(stage.gateway) == ["gateway.drift", "gateway.drift_resolved"]


def test_a_hand_flipped_release_and_a_proxy_serving_other_files_are_drift(stage):
    deployment = deploy_gateway(
        gateway=stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI, snapshot=stage.next_snapshot
    )
    current = stage.directory / "current"
    current.unlink()
    current.symlink_to(f"releases/{stage.first.pk}")  # someone put the old release back by hand

    flipped = gateway_drift_check(gateway=stage.gateway, actor=ACTOR)
    reload_proxy(kind=stage.gateway.kind, transport=LocalTransport(stage.directory))
    stage.answers(stage.first)
    reloaded = gateway_drift_check(gateway=stage.gateway, actor=ACTOR)

    moved = f"current names release {stage.first.pk}, not {deployment.pk} (deployment {deployment.pk})"
    assert flipped.findings == [moved]
    assert reloaded.findings[0] == flipped.findings[0]
    assert reloaded.findings[1].startswith(f"the proxy serves deployment '{stage.first.pk}'")
    assert gateways_drift_check_task() == 1
    assert os.readlink(current) == f"releases/{stage.first.pk}"

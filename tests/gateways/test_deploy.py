"""Deploying to a real HAProxy and a real lighttpd on loopback: live, refused, rolled back, one at a time.

Each proxy runs from a deploy directory in tmp_path (``tests.support.deploy``); the tests deploy
in this process through the service (tests/gateways/test_faults.py goes through a Celery worker).
"""

import hashlib
import http.client
import io
import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.models import AuditEvent
from apps.core.crypto import Secret
from apps.credentials.assertions import assertion_verify
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.material import generate_key_material
from apps.credentials.mint import mint_edge_token
from apps.credentials.models import SigningKey
from apps.credentials.services import assertion_root_reveal
from apps.gateways import pipeline
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.models import Deployment
from apps.gateways.services import (
    DeploymentBusy,
    deploy_all,
    deploy_gateway,
    deployment_request,
    deployment_run,
    gateway_deploy_lock,
    ssh_target_set,
)
from apps.gateways.tasks import deployment_run_task
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind
from apps.policies.models import Gateway
from tests.factories import IdentityFactory
from tests.support.deploy import ACTOR, HOST, Stage, public_route
from tests.support.worker_faults import refused_by_the_proxy

pytestmark = pytest.mark.slow
STEP_NAMES = ["render", "validate", "prove", "push", "reload", "probe"]


def _deploy(stage: Stage) -> Deployment:
    deployment = deploy_gateway(
        gateway=stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI, snapshot=stage.next_snapshot
    )
    deployment.refresh_from_db()
    return deployment


def _leftovers(directory: Path) -> list[str]:
    return [path.name for path in (directory / "releases").iterdir() if path.name.endswith(".partial")]


def test_a_deploy_goes_live_on_the_running_proxy(stage):
    assert stage.status("/b/page") == 404
    steps_seen = []

    deployment = deploy_gateway(
        gateway=stage.gateway,
        actor=ACTOR,
        trigger=DeploymentTrigger.CLI,
        snapshot=stage.next_snapshot,
        listener=steps_seen.append,
    )

    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert deployment.previous == stage.first
    assert deployment.finished_at is not None
    assert [step["step"] for step in deployment.steps] == STEP_NAMES
    assert all(step["ok"] and step["seconds"] >= 0 for step in deployment.steps)
    assert [step["step"] for step in steps_seen] == STEP_NAMES
    assert deployment.messages[-1]["text"].startswith("live:")
    main = {GatewayKind.HAPROXY: "haproxy.cfg", GatewayKind.LIGHTTPD: "lighttpd.conf"}[stage.gateway.kind]
    release = stage.directory / "releases" / str(deployment.pk)
    assert deployment.file_hashes[main] == hashlib.sha256((release / main).read_bytes()).hexdigest()
    assert len(deployment.rendered_sha256) == 64
    assert os.readlink(stage.directory / "current") == f"releases/{deployment.pk}"
    assert stage.answers(deployment)
    assert stage.status("/b/page") == 200
    assert stage.status("/a/page") == 200
    assert _leftovers(stage.directory) == []
    audited = AuditEvent.objects.filter(object_type="gateways.deployment", object_id=str(deployment.pk))
    assert {"deployment.create", "deployment.update"} <= set(audited.values_list("action", flat=True))


def test_a_config_that_fails_validation_is_never_pushed(stage, monkeypatch):
    monkeypatch.setattr(pipeline, "render", refused_by_the_proxy(pipeline.render))
    deployment = _deploy(stage)

    assert deployment.state == DeploymentState.FAILED
    assert [step["step"] for step in deployment.steps] == ["render", "validate"]
    assert deployment.steps[-1]["ok"] is False
    assert "invalid config" in deployment.messages[-1]["text"]
    assert os.readlink(stage.directory / "current") == f"releases/{stage.first.pk}"
    assert not (stage.directory / "releases" / str(deployment.pk)).exists()
    assert _leftovers(stage.directory) == []
    assert stage.answers(stage.first)


# Over SSH: the same host plays the remote one (sshd on loopback); every operation on the gateway's
# host goes through the ssh transport, and sshd's log shows the sessions it served.


@pytest.fixture
def over_ssh(stage, sshd):
    ssh_target_set(
        gateway=stage.gateway, host=sshd.host, port=sshd.port, username=sshd.username,
        known_host=sshd.host_key.public_line, private_key=sshd.client_key.private_openssh, actor=ACTOR,
    )  # fmt: skip
    return stage


def _sessions(sshd) -> int:
    return sshd.log().count("Starting session: command")


def test_a_deploy_over_ssh_is_validated_and_reloaded_on_the_target_and_goes_live(over_ssh, sshd):
    stage = over_ssh
    sessions = _sessions(sshd)

    deployment = _deploy(stage)

    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert [step["step"] for step in deployment.steps] == STEP_NAMES
    assert os.readlink(stage.directory / "current") == f"releases/{deployment.pk}"
    release = stage.directory / "releases" / str(deployment.pk)
    assert deployment.file_hashes == {
        name: hashlib.sha256((release / name).read_bytes()).hexdigest() for name in deployment.file_hashes
    }
    assert stage.answers(deployment)
    assert stage.status("/b/page") == 200
    assert _leftovers(stage.directory) == []
    # The binary checks ran as commands over SSH (lighttpd's restart too: kill -s USR1); one
    # connection served the whole deploy, and the pipeline closed it.
    log = sshd.log()
    assert _sessions(sshd) - sessions >= (1 if stage.gateway.kind == GatewayKind.HAPROXY else 5)
    assert log.count("Accepted publickey") - log.count("Disconnected from user") == 0
    assert "subsystem 'sftp'" in log


@pytest.mark.parametrize("stage", [GatewayKind.HAPROXY], indirect=True)
def test_a_reload_that_fails_over_ssh_rolls_back_over_ssh(over_ssh):
    stage = over_ssh

    def break_the_new_release(step):
        # Between the flip and the reload, the new release loses a map its config loads: the HAProxy
        # master on the target refuses it at reload (the old worker keeps serving).
        if step["step"] == "push":
            (stage.directory / "current" / "routes.map").unlink()

    deployment = deploy_gateway(
        gateway=stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI, snapshot=stage.next_snapshot,
        listener=break_the_new_release,
    )  # fmt: skip

    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.ROLLED_BACK, deployment.messages
    assert [step["step"] for step in deployment.steps] == ["render", "validate", "prove", "push", "reload"]
    assert "HAProxy refused the new config" in deployment.messages[-2]["text"]
    assert f"rolled back to release {stage.first.pk}" in deployment.messages[-1]["text"]
    assert os.readlink(stage.directory / "current") == f"releases/{stage.first.pk}"
    assert stage.answers(stage.first)
    assert stage.status("/b/page") == 404
    assert not (stage.directory / "releases" / str(deployment.pk)).exists()


def test_a_probe_that_fails_after_the_reload_rolls_back_to_the_previous_release(stage, monkeypatch):
    real_probe = pipeline.probe_until
    new_ids = []

    def probe_expecting_another_deployment(target, *, deployment_id, snapshot, **options):
        if deployment_id != str(stage.first.pk):  # the new deployment's probe: wanted something never served
            new_ids.append(deployment_id)
            return real_probe(target, deployment_id="never-deployed", snapshot=snapshot, timeout=1)
        return real_probe(target, deployment_id=deployment_id, snapshot=snapshot, **options)

    monkeypatch.setattr(pipeline, "probe_until", probe_expecting_another_deployment)
    deployment = _deploy(stage)

    assert deployment.state == DeploymentState.ROLLED_BACK, deployment.messages
    assert new_ids == [str(deployment.pk)]
    assert [step["step"] for step in deployment.steps] == STEP_NAMES
    assert deployment.steps[-1]["ok"] is False
    assert f"rolled back to release {stage.first.pk}" in deployment.messages[-1]["text"]
    assert os.readlink(stage.directory / "current") == f"releases/{stage.first.pk}"
    assert stage.answers(stage.first)
    assert stage.status("/b/page") == 404
    assert not (stage.directory / "releases" / str(deployment.pk)).exists()


def test_each_deploy_rotates_keys_without_refusing_tokens_signed_before_it(stage):
    identity = IdentityFactory()
    before = mint_edge_token(identity=identity, gateway=stage.gateway)
    assert stage.status("/private/x", before.token) == 200

    first = _deploy(stage)  # publishes the 'next' key, then switches the minter to it
    assert first.state == DeploymentState.LIVE, first.messages
    assert "now signs edge-tokens" in first.messages[-1]["text"]
    keys = dict(
        SigningKey.objects.filter(gateway=stage.gateway, purpose=KeyPurpose.EDGE_TOKEN).values_list("kid", "state")
    )
    assert keys[before.kid] == KeyState.RETIRING
    after = mint_edge_token(identity=identity, gateway=stage.gateway)
    assert after.kid != before.kid
    assert keys[after.kid] == KeyState.ACTIVE
    assert stage.status("/private/x", before.token) == 200  # the old key is still accepted (overlap)
    assert stage.status("/private/x", after.token) == 200  # the new key was live before it signed


def test_each_deploy_signs_identity_assertions_with_a_new_key_under_the_same_root(stage):
    root = assertion_root_reveal(gateway=stage.gateway, actor=ACTOR).reveal()
    token = mint_edge_token(identity=IdentityFactory(), gateway=stage.gateway).token

    def kid_the_upstream_verifies() -> str:
        client = http.client.HTTPConnection("127.0.0.1", stage.port, timeout=5)
        try:
            client.request("GET", "/private/x", headers={"Host": HOST, "Authorization": f"Bearer {token}"})
            echoed = json.loads(client.getresponse().read())
        finally:
            client.close()
        headers = echoed["headers"]
        return assertion_verify(header=headers.get("x-policyhub-assertion"), root_secret=root, host=headers["host"],
                                method=echoed["method"], path=echoed["path"], identity_headers=headers,
                                now=time.time()).kid  # fmt: skip

    kids = [kid_the_upstream_verifies()]
    for _ in range(2):
        assert _deploy(stage).state == DeploymentState.LIVE
        kids.append(kid_the_upstream_verifies())
    assert len(set(kids)) == 3
    states = dict(
        SigningKey.objects.filter(gateway=stage.gateway, purpose=KeyPurpose.IDENTITY_ASSERTION).values_list(
            "kid", "state"
        )
    )
    assert [states[kid] for kid in kids] == [KeyState.RETIRED, KeyState.RETIRED, KeyState.ACTIVE]


def test_the_live_sample_rolls_back_a_gateway_that_refuses_differently_from_the_policy(stage, monkeypatch):
    admins = policies.role_create(actor=ACTOR, slug="admins")
    application = policies.application_create(actor=ACTOR, name="admin", slug="admin")
    route = policies.route_create(
        actor=ACTOR, gateway=stage.gateway, application=application, host=HOST, path_prefix="/admin",
        upstream_url="http://127.0.0.1:9/",
    )  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[admins])
    snapshot = policies.snapshot_build(actor=ACTOR)
    real_render = pipeline.render

    def render_with_strangers_keys(kind, request):
        # Same kids, other key material: the pushed config refuses the gateway's real tokens with
        # 401 where the policy says 403. The proof renders on its own, so it still passes.
        strangers = tuple(replace(key, **_stranger_material(key.algorithm)) for key in request.keys)
        return real_render(kind, replace(request, keys=strangers))

    monkeypatch.setattr(pipeline, "render", render_with_strangers_keys)
    deployment = deploy_gateway(gateway=stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI, snapshot=snapshot)
    deployment.refresh_from_db()

    assert deployment.state == DeploymentState.ROLLED_BACK, deployment.messages
    assert [step["step"] for step in deployment.steps] == STEP_NAMES
    assert next(step for step in deployment.steps if step["step"] == "prove")["ok"] is True
    failure = next(m["text"] for m in deployment.messages if m["text"].startswith("probe:"))
    assert "the live gateway disagrees with the policy" in failure
    assert "/admin" in failure and "expected 403" in failure and "got 401" in failure
    assert stage.answers(stage.first)


def _stranger_material(algorithm: str) -> dict:
    material = generate_key_material(algorithm)
    return {"public_key_pem": material.public_key_pem, "secret": Secret(material.private_material)}


def test_installing_over_a_live_release_is_refused_and_changes_nothing(stage):
    deployment = deploy_gateway(install=True, gateway=stage.gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI)

    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.FAILED
    assert deployment.steps == []
    assert f"already has a live release ({stage.first.pk})" in deployment.messages[-1]["text"]
    assert os.readlink(stage.directory / "current") == f"releases/{stage.first.pk}"
    assert stage.answers(stage.first)


def test_a_dry_run_proves_and_shows_the_diff_without_pushing_or_rotating(stage):
    keys_before = set(SigningKey.objects.values_list("kid", "state"))
    out = io.StringIO()

    call_command("deploy", stage.gateway.name, "--dry-run", "--snapshot", stage.next_snapshot.sha256, stdout=out)

    text = out.getvalue()
    main = {GatewayKind.HAPROXY: "haproxy.cfg", GatewayKind.LIGHTTPD: "lighttpd.conf"}[stage.gateway.kind]
    assert f"against release {stage.first.pk}" in text
    assert "proof passed" in text
    assert f"changed: {main}" in text or "changed: policyhub_policy.lua" in text
    assert any(line.startswith("+") and "/b" in line for line in text.splitlines()), text
    new_link_key = SigningKey.objects.get(purpose=KeyPurpose.SIGNED_LINK, state=KeyState.NEXT)
    assert any(line.startswith("+") and f"<secret of {new_link_key.kid}>" in line for line in text.splitlines())
    for key in SigningKey.objects.filter(algorithm="HS256"):
        assert key.private_material.reveal() not in text
    assert str(stage.directory) not in text.replace(f"{stage.directory}/releases/{stage.first.pk}", "")
    assert Deployment.objects.count() == 1  # the install only
    assert set(SigningKey.objects.values_list("kid", "state")) == keys_before
    assert os.readlink(stage.directory / "current") == f"releases/{stage.first.pk}"
    assert stage.status("/b/page") == 404


def test_the_deploy_command_reports_each_step_and_a_summary(stage):
    out = io.StringIO()

    call_command("deploy", stage.gateway.name, "--snapshot", stage.next_snapshot.sha256, stdout=out, no_color=True)

    text = out.getvalue()
    deployment = Deployment.objects.get(snapshot=stage.next_snapshot)
    assert deployment.state == DeploymentState.LIVE
    for name in STEP_NAMES:
        assert f"{stage.gateway.name}  {name:>8}" in text
    assert "Deployments" in text and f"{deployment.pk}" in text and "live" in text
    assert stage.status("/b/page") == 200


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the pipeline catches it, so the row stays where it was."""


@pytest.mark.parametrize(("dies_in", "left_in"), [("reload_proxy", "reloading"), ("gateway_prove", "proving")])
def test_a_deployment_whose_worker_died_is_finished_by_the_next_run(stage, monkeypatch, dies_in, left_in):
    def die(**kwargs):
        raise WorkerKilled

    with monkeypatch.context() as patched:
        patched.setattr(pipeline, dies_in, die)
        with pytest.raises(WorkerKilled):
            _deploy(stage)
    interrupted = Deployment.objects.get(snapshot=stage.next_snapshot)
    assert interrupted.state == left_in
    flipped = os.readlink(stage.directory / "current") == f"releases/{interrupted.pk}"
    assert flipped is (left_in == "reloading")

    resumed = deployment_run(deployment_id=interrupted.pk)  # what the redelivered task does

    resumed.refresh_from_db()
    assert resumed.state == DeploymentState.LIVE, resumed.messages
    assert any("resuming an interrupted deployment" in message["text"] for message in resumed.messages)
    after = [step["step"] for step in resumed.steps][len(interrupted.steps) :]
    assert after == (["reload", "probe"] if flipped else STEP_NAMES)
    assert "now signs edge-tokens" in resumed.messages[-1]["text"]  # the row told it which keys went live
    assert stage.answers(resumed)
    assert stage.status("/b/page") == 200


# Without a running proxy ---------------------------------------------------------------------


def _idle_gateway(tmp_path, *, deploy_directory: str | None = None) -> Gateway:
    return policies.gateway_create(
        actor=ACTOR, name="idle-edge", kind=GatewayKind.HAPROXY, listen_address="127.0.0.1:9",
        public_hostnames=[HOST], deploy_directory=str(tmp_path) if deploy_directory is None else deploy_directory,
    )  # fmt: skip


@pytest.mark.django_db
def test_a_gateway_without_deploy_directory_is_refused(tmp_path):
    gateway = _idle_gateway(tmp_path, deploy_directory="")
    policies.snapshot_build(actor=ACTOR)
    with pytest.raises(ValidationError, match="idle-edge has no deploy directory"):
        deploy_gateway(gateway=gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI)
    assert not Deployment.objects.exists()


@pytest.mark.django_db
def test_a_finished_deployment_is_not_run_again(tmp_path):
    gateway = _idle_gateway(tmp_path)
    snapshot = policies.snapshot_build(actor=ACTOR)
    done = Deployment.objects.create(
        gateway=gateway, snapshot=snapshot, trigger=DeploymentTrigger.API, actor=str(ACTOR), state=DeploymentState.LIVE
    )
    assert deployment_run(deployment_id=done.pk).state == DeploymentState.LIVE
    done.refresh_from_db()
    assert done.steps == []


@pytest.mark.django_db(transaction=True)
def test_a_second_deploy_of_a_gateway_is_refused_while_one_holds_its_lock(tmp_path):
    gateway = _idle_gateway(tmp_path)
    policies.snapshot_build(actor=ACTOR)
    errors = []

    def deploy_from_another_connection():
        try:
            deploy_gateway(gateway=gateway, actor=ACTOR, trigger=DeploymentTrigger.API)
        except DeploymentBusy as error:
            errors.append(str(error))
        finally:
            connection.close()

    with gateway_deploy_lock(gateway):  # what a running deploy holds
        thread = threading.Thread(target=deploy_from_another_connection)
        thread.start()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert errors == ["a deployment of idle-edge is already running"]
    assert not Deployment.objects.exists()


@pytest.mark.django_db
def test_the_task_runs_a_deployment_by_primary_key_once(tmp_path):
    gateway = _idle_gateway(tmp_path)
    snapshot = policies.snapshot_build(actor=ACTOR)
    done = Deployment.objects.create(
        gateway=gateway, snapshot=snapshot, trigger=DeploymentTrigger.API, actor=str(ACTOR), state=DeploymentState.LIVE
    )
    # Called in-process, as a worker calls it.
    assert deployment_run_task(done.pk) == DeploymentState.LIVE
    assert deployment_run_task.acks_late is True


@pytest.mark.django_db
def test_the_command_names_what_stops_a_deploy(tmp_path):
    _idle_gateway(tmp_path, deploy_directory="")
    policies.snapshot_build(actor=ACTOR)
    with pytest.raises(CommandError, match="no gateway named 'nope'"):
        call_command("deploy", "nope")
    with pytest.raises(CommandError, match="idle-edge has no deploy directory"):
        call_command("deploy", "idle-edge")


@pytest.mark.django_db
def test_a_second_request_joins_the_queued_deployment_with_its_snapshot(tmp_path):
    gateway = _idle_gateway(tmp_path)
    first_snapshot = policies.snapshot_build(actor=ACTOR)
    queued = deployment_request(gateway=gateway, actor=ACTOR, trigger=DeploymentTrigger.API)
    public_route(gateway, "/new", "http://127.0.0.1:9")
    newer = policies.snapshot_build(actor=ACTOR)

    joined = deployment_request(gateway=gateway, actor=ACTOR, trigger=DeploymentTrigger.WEBHOOK, snapshot=newer)

    assert joined.pk == queued.pk
    assert Deployment.objects.get().snapshot == newer != first_snapshot


@pytest.mark.django_db
def test_deploy_all_queues_every_deployable_gateway(tmp_path):
    deployable = _idle_gateway(tmp_path)
    policies.gateway_create(
        actor=ACTOR, name="manual-edge", kind=GatewayKind.LIGHTTPD, listen_address="127.0.0.1:10",
        public_hostnames=["other.example.test"],
    )  # fmt: skip
    policies.snapshot_build(actor=ACTOR)
    queued = deploy_all(actor=ACTOR, trigger=DeploymentTrigger.SCHEDULE)
    assert [deployment.gateway for deployment in queued] == [deployable]
    assert queued[0].state == DeploymentState.QUEUED

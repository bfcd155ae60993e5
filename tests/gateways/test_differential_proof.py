"""A deploy on a proven live release proves what changed: fast, and still catching what the change breaks.

The stage (``tests.support.deploy``) gets public routes on three more hosts, deployed with a full
proof (they are new). Each test then changes one host's routes; the proof sends that host's classes
(and the changed routes as the live release had them), with ``POLICYHUB_PROOF_SAMPLE_ROUTES = 0`` so
nothing else. The faults are the proof's render only: the config that would be pushed is correct,
so a deploy that fails did so because the proof caught the fault.
"""

import http.client
import io
import json

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.gateways import verify
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.echo import echo_upstream
from apps.gateways.models import Deployment
from apps.gateways.proof import gateways_live_prove
from apps.gateways.services import deploy_gateway
from apps.policies import services as policies
from apps.policies.choices import AuthMode, Effect
from apps.policies.models import Route
from apps.policies.snapshot import compile_policy
from tests.support.deploy import ACTOR, Stage
from tests.support.render_faults import rendering_policy, without_deny_rules
from tests.support.worker_faults import refused_by_the_proxy

pytestmark = pytest.mark.slow
HOSTS = ("one.example.test", "two.example.test", "three.example.test")


def _route(stage: Stage, host: str, prefix: str, upstream: str) -> Route:
    slug = f"{host.split('.', maxsplit=1)[0]}-{prefix.strip('/') or 'root'}"
    application = policies.application_create(actor=ACTOR, name=slug, slug=slug)
    route = policies.route_create(
        actor=ACTOR,
        gateway=stage.gateway,
        application=application,
        host=host,
        path_prefix=prefix,
        upstream_url=upstream,
    )
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.PUBLIC)
    return route


def _deploy(stage: Stage, *, full_proof: bool = False) -> Deployment:
    deployment = deploy_gateway(
        gateway=stage.gateway,
        actor=ACTOR,
        trigger=DeploymentTrigger.CLI,
        snapshot=policies.snapshot_build(actor=ACTOR),
        full_proof=full_proof,
    )
    deployment.refresh_from_db()
    return deployment


def _status(stage: Stage, host: str, path: str) -> int:
    client = http.client.HTTPConnection("127.0.0.1", stage.port, timeout=5)
    try:
        client.request("GET", path, headers={"Host": host})
        return client.getresponse().status
    finally:
        client.close()


@pytest.fixture
def upstream():
    with echo_upstream() as address:
        yield address


@pytest.fixture
def hosts(stage, upstream, settings) -> Deployment:
    """The stage with a public route on each of HOSTS, live; returns that deployment."""
    settings.POLICYHUB_PROOF_SAMPLE_ROUTES = 0
    policies.gateway_update(gateway=stage.gateway, actor=ACTOR, data={"public_hostnames": [stage.host, *HOSTS]})
    for host in HOSTS:
        _route(stage, host, "/", upstream)
    deployment = _deploy(stage)
    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert deployment.proof["scope"].startswith("full: "), deployment.proof  # every route changed
    return deployment


def test_a_deploy_proves_the_hosts_its_change_touches_and_full_proof_proves_everything(stage, upstream, hosts):
    _route(stage, "one.example.test", "/c", upstream)

    deployment = _deploy(stage)

    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert deployment.proof["scope"] == (
        "differential: 1 changed routes, 2 on their hosts and 0 sampled of 7, and 0 as they were"
    )
    assert deployment.proof["basis"] == hosts.proof["basis"]
    assert deployment.proof["requests"] < hosts.proof["requests"] / 2
    assert any("(differential: " in message["text"] for message in deployment.messages)
    assert _status(stage, "one.example.test", "/c") == 200

    everything = _deploy(stage, full_proof=True)

    assert everything.state == DeploymentState.LIVE, everything.messages
    assert everything.proof["scope"] == "full: asked for"
    assert everything.proof["requests"] > deployment.proof["requests"]


def test_the_proof_catches_a_config_that_still_admits_a_removed_route(stage, hosts, monkeypatch):
    live_policy = compile_policy(json.loads(hosts.snapshot.content))
    monkeypatch.setattr(verify, "render", rendering_policy(verify.render, live_policy))
    policies.route_delete(route=Route.objects.get(host="two.example.test"), actor=ACTOR)

    deployment = _deploy(stage)

    assert deployment.state == DeploymentState.FAILED
    assert deployment.proof["scope"].startswith("differential: 1 changed routes, 0 on their hosts")
    assert deployment.proof["basis"] == ""  # a failed proof is no base for the next one
    assert "the proof failed" in deployment.messages[-1]["text"]
    assert "two.example.test/" in deployment.messages[-1]["text"]
    assert stage.answers(hosts)  # nothing was pushed
    assert _status(stage, "two.example.test", "/") == 200  # the live release still has it


def test_the_proof_catches_a_renderer_bug_in_the_changed_route(stage, hosts, monkeypatch):
    monkeypatch.setattr(verify, "render", without_deny_rules(verify.render, stage.gateway.name))
    route = Route.objects.get(host="three.example.test")
    policies.access_rule_create(
        actor=ACTOR, route=route, auth_mode=AuthMode.PUBLIC, effect=Effect.DENY, allowed_cidrs=["10.0.0.0/8"]
    )

    deployment = _deploy(stage)

    assert deployment.state == DeploymentState.FAILED
    assert deployment.proof["scope"].startswith("differential: 1 changed routes, 1 on their hosts")
    assert "denied_by_rule" in deployment.messages[-1]["text"]
    assert stage.answers(hosts)


def test_the_deploy_command_says_how_much_it_proves_and_proves_everything_when_asked(stage, upstream, hosts):
    _route(stage, "two.example.test", "/d", upstream)
    policies.snapshot_build(actor=ACTOR)
    out = io.StringIO()

    call_command("deploy", stage.gateway.name, "--dry-run", stdout=out, no_color=True)
    call_command("deploy", stage.gateway.name, "--dry-run", "--full-proof", stdout=out, no_color=True)

    text = out.getvalue()
    assert "(differential: 1 changed routes, 2 on their hosts and 0 sampled of 7, and 0 as they were)" in text
    assert "(full: asked for)" in text


def test_the_nightly_full_proof_proves_each_live_snapshot_and_a_failure_costs_the_proven_base(
    stage, upstream, hosts, monkeypatch
):
    [(gateway, result)] = gateways_live_prove(actor=ACTOR)
    assert (gateway, result.ok, result.scope.full) == (stage.gateway, True, True)
    audited = AuditEvent.objects.filter(action="gateway.prove").latest("id").after
    assert (audited["passed"], audited["scope"]) == (True, "full: asked for")

    monkeypatch.setattr(verify, "render", refused_by_the_proxy(verify.render))
    [(gateway, result)] = gateways_live_prove(actor=ACTOR)
    assert not result.ok
    hosts.refresh_from_db()
    assert hosts.proof["basis"] == ""
    monkeypatch.undo()

    _route(stage, "one.example.test", "/c", upstream)
    deployment = _deploy(stage)

    assert deployment.state == DeploymentState.LIVE, deployment.messages
    assert deployment.proof["scope"] == "full: no proven live release to compare with"

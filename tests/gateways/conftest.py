"""Fixtures shared by the gateway tests: a gateway deployed to a live proxy, and a real OpenSSH
server standing in for a gateway's remote host."""

import pytest

from apps.credentials.choices import KeyPurpose
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port
from apps.gateways.services import deploy_gateway
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind
from tests.support.sshd import running_sshd
from tests.support.stage import ACTOR, HOST, Stage, public_route, running_proxy_at


@pytest.fixture(params=[GatewayKind.HAPROXY, GatewayKind.LIGHTTPD])
def stage(request, db, tmp_path):
    kind = request.param
    port = free_loopback_port()
    directory = tmp_path / "deploy"
    with echo_upstream() as upstream:
        gateway = policies.gateway_create(
            actor=ACTOR, name=f"{kind}-edge", kind=kind, listen_address=f"127.0.0.1:{port}",
            public_hostnames=[HOST], deploy_directory=str(directory),
        )  # fmt: skip
        for purpose in KeyPurpose:
            signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR, purpose=purpose), actor=ACTOR)
        public_route(gateway, "/a", upstream)
        public_route(gateway, "/private", upstream, AuthMode.AUTHENTICATED)
        first = deploy_gateway(
            install=True,
            gateway=gateway,
            actor=ACTOR,
            trigger=DeploymentTrigger.CLI,
            snapshot=policies.snapshot_build(actor=ACTOR),
        )
        assert first.state == DeploymentState.LIVE, first.messages
        public_route(gateway, "/b", upstream)
        next_snapshot = policies.snapshot_build(actor=ACTOR)
        with running_proxy_at(kind, directory):
            staged = Stage(gateway, directory, first, next_snapshot, port)
            assert staged.answers(first)
            yield staged


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server

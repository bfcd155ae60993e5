"""A deployable gateway on a running proxy, set up the way README "Deploying" asks.

The proxy runs from a deploy directory (HAProxy in master-worker mode with its master socket,
lighttpd in the foreground with its pid file) on a first release put in place by
``deploy_gateway(install=True)``, in front of an echo upstream; tests and benchmarks then deploy to
it through the services.
"""

import http.client
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose
from apps.credentials.services import signing_key_activate, signing_key_generate
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.echo import echo_upstream
from apps.gateways.live import free_loopback_port
from apps.gateways.models import Deployment
from apps.gateways.probe import ProbeTarget, probe_until
from apps.gateways.services import deploy_gateway
from apps.gateways.supervised import proxy_running
from apps.policies import services as policies
from apps.policies.choices import AuthMode
from apps.policies.models import Gateway, PolicySnapshot

ACTOR = Actor.system("deploy-test")
HOST = "app.example.test"


@dataclass(frozen=True)
class Stage:
    gateway: Gateway
    directory: Path
    first: Deployment  # live on the running proxy
    next_snapshot: PolicySnapshot  # adds the route /b
    port: int
    host: str
    process: subprocess.Popen  # HAProxy's master, or lighttpd

    def answers(self, deployment: Deployment) -> bool:
        target = ProbeTarget.for_listen_address(self.gateway.listen_address, tls=False)
        probe_until(target, deployment_id=str(deployment.pk), snapshot=deployment.snapshot.sha256, timeout=15)
        return True

    def status(self, path: str, token: str = "") -> int:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {"Host": self.host, **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            client.request("GET", path, headers=headers)
            return client.getresponse().status
        finally:
            client.close()


def public_route(gateway: Gateway, prefix: str, upstream: str, auth_mode: str = AuthMode.PUBLIC, *, host: str = HOST):
    name = f"{gateway.name}-{prefix.strip('/')}"
    application = policies.application_create(actor=ACTOR, name=name, slug=name)
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host=host, path_prefix=prefix, upstream_url=upstream
    )
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=auth_mode)


def first_release(gateway: Gateway, snapshot: PolicySnapshot) -> Deployment:
    """What an operator does once before starting the proxy: ``deploy GATEWAY --install``."""
    first = deploy_gateway(gateway=gateway, actor=ACTOR, trigger=DeploymentTrigger.CLI, snapshot=snapshot, install=True)
    first.refresh_from_db()
    if first.state != DeploymentState.LIVE:
        raise AssertionError(f"the first release was not installed: {first.messages}")
    return first


@contextmanager
def deploy_stage(kind: str, directory: Path, *, host: str = HOST) -> Iterator[Stage]:
    """A gateway with keys, the routes /a (public) and /private (authenticated), live on a running
    proxy; ``next_snapshot`` adds the public route /b."""
    port = free_loopback_port()
    with echo_upstream() as upstream:
        gateway = policies.gateway_create(
            actor=ACTOR, name=f"{kind}-edge", kind=kind, listen_address=f"127.0.0.1:{port}",
            public_hostnames=[host], deploy_directory=str(directory),
        )  # fmt: skip
        for purpose in KeyPurpose:
            signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR, purpose=purpose), actor=ACTOR)
        public_route(gateway, "/a", upstream, host=host)
        public_route(gateway, "/private", upstream, AuthMode.AUTHENTICATED, host=host)
        first = first_release(gateway, policies.snapshot_build(actor=ACTOR))
        public_route(gateway, "/b", upstream, host=host)
        next_snapshot = policies.snapshot_build(actor=ACTOR)
        with proxy_running(kind, directory) as process:
            staged = Stage(gateway, directory, first, next_snapshot, port, host, process)
            assert staged.answers(first)
            yield staged

"""A gateway deployed to a real proxy on loopback, for the deploy, key and drift tests.

The proxy runs from a deploy directory in tmp_path, started the way the README's "Deploying"
section asks (HAProxy in master-worker mode with its master socket, lighttpd in the foreground with
its pid file), on a first release put in place by ``deploy_gateway(install=True)``; routes /a (public) and
/private (any identity) are live, and ``next_snapshot`` adds /b.
"""

import http.client
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apps.core.actors import Actor
from apps.gateways.live import stop_process
from apps.gateways.models import Deployment
from apps.gateways.probe import ProbeTarget, probe_until
from apps.policies import services as policies
from apps.policies.choices import AuthMode, GatewayKind
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

    def answers(self, deployment: Deployment) -> bool:
        target = ProbeTarget.for_listen_address(self.gateway.listen_address, tls=False)
        probe_until(target, deployment_id=str(deployment.pk), snapshot=deployment.snapshot.sha256, timeout=15)
        return True

    def status(self, path: str, token: str = "") -> int:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        headers = {"Host": HOST, **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            client.request("GET", path, headers=headers)
            return client.getresponse().status
        finally:
            client.close()


def public_route(gateway: Gateway, prefix: str, upstream: str, auth_mode: str = AuthMode.PUBLIC) -> None:
    application = policies.application_create(actor=ACTOR, name=f"app{prefix}", slug=f"app-{prefix.strip('/')}")
    route = policies.route_create(
        actor=ACTOR, gateway=gateway, application=application, host=HOST, path_prefix=prefix, upstream_url=upstream
    )
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=auth_mode)


@contextmanager
def running_proxy_at(kind: str, directory: Path):
    run = directory / "run"
    run.mkdir()
    if kind == GatewayKind.HAPROXY:
        master_socket = str(run / "haproxy-master.sock")
        command = ["haproxy", "-W", "-S", master_socket, "-f", str(directory / "current/haproxy.cfg")]
    else:
        command = ["lighttpd", "-D", "-f", str(directory / "current/lighttpd.conf")]
    with (directory / "proxy.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    if kind == GatewayKind.LIGHTTPD:
        (run / "lighttpd.pid").write_text(f"{process.pid}\n")
    try:
        yield process
    finally:
        stop_process(process)

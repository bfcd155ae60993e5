"""The demo's gateways made deployable on this machine: each gets a deploy directory (when it has
none) and its first release put in place, so ``manage.py run_gateways`` can start its proxy and the
web UI's deploys reload it. Needs the real binaries; a missing one is reported, not fatal."""

from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.core.demo_policy import DEMO_HAPROXY_GATEWAY, DEMO_LIGHTTPD_GATEWAY
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.services import deploy_gateway
from apps.gateways.supervised import proxy_missing
from apps.policies.models import Gateway
from apps.policies.services import gateway_update


@dataclass(frozen=True)
class DemoGatewayInstall:
    gateway: str
    directory: str
    ready: bool  # a release is in place for the proxy to start on
    outcome: str


def demo_gateways_install(*, actor: Actor, directory: Path) -> list[DemoGatewayInstall]:
    """Per demo gateway, in ``directory/<name>`` unless it already has a deploy directory."""
    gateways = Gateway.objects.filter(name__in=(DEMO_HAPROXY_GATEWAY, DEMO_LIGHTTPD_GATEWAY)).order_by("name")
    return [_install(actor=actor, gateway=gateway, directory=directory) for gateway in gateways]


def _install(*, actor: Actor, gateway: Gateway, directory: Path) -> DemoGatewayInstall:
    if not gateway.deploy_directory:
        try:
            gateway = gateway_update(
                gateway=gateway, actor=actor, data={"deploy_directory": str(directory / gateway.name)}
            )
        except ValidationError as error:
            return DemoGatewayInstall(
                gateway.name, "", ready=False, outcome=f"not deployable: {' '.join(error.messages)}"
            )
    where = gateway.deploy_directory
    if (Path(where) / "current").exists():
        return DemoGatewayInstall(gateway.name, where, ready=True, outcome="a release is already in place")
    if missing := proxy_missing(gateway.kind):
        return DemoGatewayInstall(gateway.name, where, ready=False, outcome=f"no release: {missing}")
    deployment = deploy_gateway(gateway=gateway, actor=actor, trigger=DeploymentTrigger.CLI, install=True)
    deployment.refresh_from_db()
    if deployment.state != DeploymentState.LIVE:
        problems = "; ".join(message["text"] for message in deployment.messages if message["level"] == "error")
        outcome = f"first release failed ({deployment.get_state_display().lower()}): {problems}"
        return DemoGatewayInstall(gateway.name, where, ready=False, outcome=outcome)
    return DemoGatewayInstall(gateway.name, where, ready=True, outcome=f"first release installed ({deployment.pk})")

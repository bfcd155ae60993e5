"""``manage.py deploy GATEWAY [--snapshot SHA]``: deploy a snapshot to a gateway now, step by step."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.core.actors import Actor
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.management.lookups import gateway_named, snapshot_by_prefix
from apps.gateways.services import DeploymentBusy, deploy_gateway


class Command(BaseCommand):
    help = (
        "Render, validate and prove GATEWAY's part of a policy snapshot, push it into the gateway's deploy "
        "directory, reload the proxy and probe it; rolls back on a failed reload or probe. Exits non-zero "
        "unless the deployment goes live."
    )

    def add_arguments(self, parser):
        parser.add_argument("gateway", help="gateway name")
        parser.add_argument("--snapshot", help="sha256 (or a unique prefix) of the snapshot; default: the newest")

    def handle(self, *args, gateway: str, snapshot: str | None, **options):
        target = gateway_named(gateway)
        chosen = snapshot_by_prefix(snapshot) if snapshot else None
        try:
            deployment = deploy_gateway(
                gateway=target, actor=Actor.cli(), trigger=DeploymentTrigger.CLI, snapshot=chosen, listener=self._step
            )
        except (ValidationError, DeploymentBusy) as error:
            raise CommandError(" ".join(getattr(error, "messages", [str(error)]))) from None
        outcome = f"deployment {deployment.pk} of {target.name}: {deployment.state}"
        if deployment.state != DeploymentState.LIVE:
            raise CommandError(f"{outcome}: {deployment.messages[-1]['text']}")
        self.stdout.write(self.style.SUCCESS(outcome))

    def _step(self, step: dict) -> None:
        style = self.style.SUCCESS if step["ok"] else self.style.ERROR
        self.stdout.write(style(f"{step['step']:>8}  {step['seconds']:6.2f}s  {step['text']}"))

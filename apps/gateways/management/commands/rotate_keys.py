"""``manage.py rotate_keys [GATEWAY…] [--retire-now]``: rotate gateways' keys now, through a deploy."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from rich.table import Table

from apps.core.actors import Actor
from apps.core.console import console_for
from apps.credentials.choices import ACCEPTED_STATES
from apps.credentials.models import SigningKey
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.management.lookups import gateways_named_or_deployable, refused
from apps.gateways.management.progress import deployments_table, step_progress
from apps.gateways.services import DeploymentBusy, gateway_keys_rotate


class Command(BaseCommand):
    help = (
        "Rotate each GATEWAY's signing keys (default: every deployable gateway) by deploying its live snapshot "
        "again: the published 'next' keys are proven live and start signing, new 'next' keys are made. "
        "--retire-now (a key is compromised) also retires the keys that stopped signing and deploys again, "
        "so the proxies refuse every token they signed."
    )

    def add_arguments(self, parser):
        parser.add_argument("gateways", nargs="*", metavar="GATEWAY", help="gateway names; default: all deployable")
        parser.add_argument("--retire-now", action="store_true", help="refuse the replaced keys at once")

    def handle(self, *args, gateways: list[str], retire_now: bool, **options):
        targets = gateways_named_or_deployable(gateways)
        console = console_for(self.stdout, no_color=options["no_color"])
        deployments = []
        for gateway in targets:
            try:
                with step_progress(console, gateway.name) as listener:
                    deployments += gateway_keys_rotate(
                        gateway=gateway,
                        actor=Actor.cli(),
                        trigger=DeploymentTrigger.CLI,
                        retire_now=retire_now,
                        listener=listener,
                    )
            except (ValidationError, DeploymentBusy) as error:
                raise refused(gateway, error) from None
        console.print(deployments_table(deployments))
        console.print(_keys_table(targets))
        failed = sorted({d.gateway.name for d in deployments if d.state != DeploymentState.LIVE})
        if failed:
            raise CommandError(f"keys not rotated on: {', '.join(failed)}")


def _keys_table(gateways) -> Table:
    table = Table(title="Keys the proxies accept")
    for column in ("gateway", "purpose", "kid", "algorithm", "state", "not after"):
        table.add_column(column)
    keys = SigningKey.objects.filter(gateway__in=gateways, state__in=ACCEPTED_STATES).select_related("gateway")
    for key in keys.order_by("gateway__name", "purpose", "state", "kid"):
        table.add_row(key.gateway.name, key.purpose, key.kid, key.algorithm, key.state, f"{key.not_after:%Y-%m-%d}")
    return table

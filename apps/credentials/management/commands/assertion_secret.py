"""``manage.py assertion_secret GATEWAY [--rotate]``: show (or replace, then show) the gateway's
identity-assertion root, which its upstreams verify ``X-Policyhub-Assertion`` with."""

from django.core.management.base import BaseCommand

from apps.core.actors import Actor
from apps.credentials.services import assertion_root_reveal, assertion_root_rotate
from apps.gateways.management.lookups import gateway_named


class Command(BaseCommand):
    help = (
        "Print GATEWAY's identity-assertion root secret (made on first use) on stdout, for configuring its "
        "upstreams; every reveal is audited. --rotate replaces it first (audited): upstreams must then be given "
        "the new root, keeping the old one until the gateway's next deploy has gone live."
    )

    def add_arguments(self, parser):
        parser.add_argument("gateway", help="gateway name")
        parser.add_argument("--rotate", action="store_true", help="replace the root, then print the new one")

    def handle(self, *args, gateway: str, rotate: bool, **options):
        actor = Actor.cli()
        target = gateway_named(gateway)
        if rotate:
            assertion_root_rotate(gateway=target, actor=actor)
            self.stderr.write(
                self.style.WARNING(
                    f"{target.name}: the identity-assertion root was replaced. Give every upstream behind it the "
                    "new root below and keep accepting the old one: the live proxy signs under the old root "
                    f"until the next deploy of {target.name} goes live; then drop the old root."
                )
            )
        self.stdout.write(assertion_root_reveal(gateway=target, actor=actor).reveal())

"""``manage.py prove_gateway GATEWAY``: run the equivalence proof on a live local proxy."""

from django.core.management.base import BaseCommand, CommandError

from apps.core.actors import Actor
from apps.gateways.management.lookups import gateway_named, snapshot_by_prefix
from apps.gateways.proof import gateway_prove
from apps.policies.services import snapshot_build


class Command(BaseCommand):
    help = (
        "Render GATEWAY's part of a policy snapshot, run it on the real proxy on a loopback port and send "
        "one request per equivalence class; every answer must equal decide(). Exits non-zero on any mismatch."
    )

    def add_arguments(self, parser):
        parser.add_argument("gateway", help="gateway name")
        parser.add_argument("--snapshot", help="sha256 (or a unique prefix) of the snapshot; default: build now")

    def handle(self, *args, gateway: str, snapshot: str | None, **options):
        actor = Actor.cli()
        target = gateway_named(gateway)
        chosen = snapshot_by_prefix(snapshot) if snapshot else snapshot_build(actor=actor)
        self.stdout.write(f"proving {target.name} ({target.kind}) against snapshot {chosen.sha256[:16]} ...")
        result = gateway_prove(gateway=target, snapshot=chosen, actor=actor)
        for problem in result.problems:
            self.stdout.write(self.style.ERROR(f"invalid config ({problem.check}): {problem.message}"))
        for mismatch in result.mismatches:
            self.stdout.write(self.style.ERROR(f"mismatch: {mismatch.describe()}"))
        summary = f"{result.requests} requests, {len(result.mismatches)} mismatches"
        if not result.ok:
            raise CommandError(f"{target.name}: proof failed: {summary}")
        self.stdout.write(self.style.SUCCESS(f"{target.name}: proof passed: {summary}"))

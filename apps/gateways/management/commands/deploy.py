"""``manage.py deploy [GATEWAY…] [--snapshot SHA] [--dry-run | --install]``: deploy now, step by step."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.text import Text

from apps.core.actors import Actor
from apps.core.console import console_for
from apps.gateways.choices import DeploymentState, DeploymentTrigger
from apps.gateways.dry_run import DryRun, deployment_dry_run
from apps.gateways.management.lookups import gateways_named_or_deployable, refused, snapshot_by_prefix
from apps.gateways.management.progress import deployments_table, step_progress
from apps.gateways.services import DeploymentBusy, deploy_gateway

DIFF_STYLES = {"+": "green", "-": "red", "@": "cyan"}


class Command(BaseCommand):
    help = (
        "Render, validate and prove each GATEWAY's part of a policy snapshot (default: every gateway with a "
        "deploy directory), push it, reload the proxy and probe it; rolls back on a failed reload or probe. "
        "Each proof covers what changed since the live release plus a sample (--full-proof: everything). "
        "--dry-run stops before the push and prints the config diff against what is live; --install puts a "
        "gateway's first release in place for its proxy to be started on. Exits non-zero unless every "
        "gateway succeeds."
    )

    def add_arguments(self, parser):
        parser.add_argument("gateways", nargs="*", metavar="GATEWAY", help="gateway names; default: all deployable")
        parser.add_argument("--snapshot", help="sha256 (or a unique prefix) of the snapshot; default: the newest")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--dry-run", action="store_true", help="render, validate and prove; push nothing")
        mode.add_argument("--install", action="store_true", help="put the first release in place (no reload)")
        parser.add_argument(
            "--full-proof",
            action="store_true",
            help="prove every route, not only what changed since the live release (and a sample)",
        )

    def handle(self, *args, gateways: list[str], snapshot: str | None, dry_run: bool, install: bool, **options):
        full_proof = options["full_proof"]
        targets = gateways_named_or_deployable(gateways)
        chosen = snapshot_by_prefix(snapshot) if snapshot else None
        console = console_for(self.stdout, no_color=options["no_color"])
        if dry_run:
            results = [self._dry_run(console, gateway, chosen, full_proof) for gateway in targets]
            failed = [result.gateway for result in results if not result.ok]
        else:
            deployments = [self._deploy(console, gateway, chosen, install, full_proof) for gateway in targets]
            console.print(deployments_table(deployments))
            failed = [d.gateway.name for d in deployments if d.state != DeploymentState.LIVE]
        if failed:
            raise CommandError(f"not done on: {', '.join(failed)}")

    def _deploy(self, console: Console, gateway, snapshot, install: bool, full_proof: bool):
        try:
            with step_progress(console, gateway.name) as listener:
                deployment = deploy_gateway(
                    install=install,
                    full_proof=full_proof,
                    gateway=gateway,
                    actor=Actor.cli(),
                    trigger=DeploymentTrigger.CLI,
                    snapshot=snapshot,
                    listener=listener,
                )
        except (ValidationError, DeploymentBusy) as error:
            raise refused(gateway, error) from None
        deployment.refresh_from_db()
        return deployment

    def _dry_run(self, console: Console, gateway, snapshot, full_proof: bool) -> DryRun:
        with console.status(f"{gateway.name}: rendering, validating and proving ..."):
            result = deployment_dry_run(gateway=gateway, actor=Actor.cli(), snapshot=snapshot, full_proof=full_proof)
        live = f"release {result.live_release}" if result.live_release else "nothing live yet"
        console.print(f"[bold]{gateway.name}[/]: snapshot {result.snapshot[:12]} against {live}")
        for problem in result.validation.problems:
            console.print(Text(f"  invalid config ({problem.check}): {problem.message}", style="red"))
        if result.proof is not None:
            for mismatch in result.proof.mismatches:
                console.print(Text(f"  mismatch: {mismatch.describe()}", style="red"))
            verdict = "[green]passed[/]" if result.proof.ok else "[red]failed[/]"
            counts = f"{result.proof.requests} requests, {len(result.proof.mismatches)} mismatches"
            console.print(f"  proof {verdict}: {counts} ({result.proof.scope.describe()})")
        if not result.changes:
            console.print("  no file differs from the live release")
        for change in result.changes:
            if change.hidden:
                console.print(f"  {change.change}: {change.name} (compared by hash only: not shown)")
                continue
            console.print(f"  {change.change}: {change.name}")
            for line in change.diff:
                console.print(Text(line, style=DIFF_STYLES.get(line[:1], "")))
        return result

"""``manage.py seed_demo [--gateways-dir DIR]``: load the demo story, optionally make its gateways
deployable here, and print a working login per hub role."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core.actors import Actor
from apps.core.demo import DemoSummary, demo_logins_reset, demo_seed
from apps.core.demo_gateways import demo_gateways_install

SIGN_IN_URL = "http://127.0.0.1:8000/login/"  # the web UI, and the admin at /admin/


def _describe(summary: DemoSummary) -> str:
    return (
        f"{summary.identity_sources} identity sources, {summary.identities} identities "
        f"({summary.active_identities} active), {summary.groups} groups, {summary.memberships} memberships, "
        f"{summary.roles} roles, {summary.role_mappings} role mappings, {summary.applications} applications, "
        f"{summary.gateways} gateways (with {summary.signing_keys} signing keys), {summary.routes} routes, "
        f"{summary.access_rules} access rules"
    )


class Command(BaseCommand):
    help = (
        "Load the demo identity sources, identities, roles, gateways, routes and rules (once), "
        "build the policy snapshot, and (re)set the passwords of the demo accounts (admin 'demo', "
        "'demo-editor', 'demo-auditor')."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off. The printed password then opens a non-development installation.",
        )
        parser.add_argument(
            "--gateways-dir",
            type=Path,
            metavar="DIR",
            help="Make the demo gateways deployable in DIR/<gateway> and put their first release in place "
            "(with the real haproxy and lighttpd), for `manage.py run_gateways` to start.",
        )

    def handle(self, *args, force: bool, gateways_dir: Path | None, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates a superuser and prints its password, so it runs only with DEBUG=1; "
                "pass --force to run it anyway."
            )
        actor = Actor.cli()
        summary = demo_seed(actor=actor)
        logins = demo_logins_reset(actor=actor)

        if summary.seeded:
            self.stdout.write(self.style.SUCCESS(f"Seeded the demo: {_describe(summary)}."))
        else:
            self.stdout.write(
                f"Demo identity sources already exist ({', '.join(summary.existing_sources)}), "
                f"so nothing was seeded. policyhub holds {_describe(summary)}."
            )
        snapshot = summary.snapshot_sha256 or "none built yet"
        self.stdout.write(f"Policy snapshot: {snapshot}")
        if gateways_dir is not None:
            for gateway in demo_gateways_install(actor=actor, directory=gateways_dir.resolve()):
                style = self.style.SUCCESS if gateway.ready else self.style.WARNING
                where = f" ({gateway.directory})" if gateway.directory else ""
                self.stdout.write(style(f"Gateway {gateway.gateway}{where}: {gateway.outcome}"))
        for login in logins:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Sign in at {SIGN_IN_URL} as {login.username} / {login.password.reveal()} ({login.hub_role})"
                )
            )

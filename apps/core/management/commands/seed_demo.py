"""``manage.py seed_demo``: load the demo story and print a working admin login."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core.actors import Actor
from apps.core.demo import DemoSummary, demo_admin_reset, demo_seed

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
        "build the policy snapshot, and (re)set the password of the 'demo' superuser."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off. The printed password then opens a non-development installation.",
        )

    def handle(self, *args, force: bool, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates a superuser and prints its password, so it runs only with DEBUG=1; "
                "pass --force to run it anyway."
            )
        actor = Actor.cli()
        summary = demo_seed(actor=actor)
        login = demo_admin_reset(actor=actor)

        if summary.seeded:
            self.stdout.write(self.style.SUCCESS(f"Seeded the demo: {_describe(summary)}."))
        else:
            self.stdout.write(
                f"Demo identity sources already exist ({', '.join(summary.existing_sources)}), "
                f"so nothing was seeded. policyhub holds {_describe(summary)}."
            )
        snapshot = summary.snapshot_sha256 or "none built yet"
        self.stdout.write(f"Policy snapshot: {snapshot}")
        self.stdout.write(
            self.style.SUCCESS(f"Sign in at {SIGN_IN_URL} as {login.username} / {login.password.reveal()}")
        )

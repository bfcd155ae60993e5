"""``manage.py create_webhook_receiver SENDER SLUG [--source SOURCE] [--secret-stdin]``: add a receiver
and print its secret once."""

import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.identities.models import IdentitySource
from apps.webhooks.choices import Sender
from apps.webhooks.services import webhook_receiver_create


class Command(BaseCommand):
    help = (
        "Create a webhook receiver at /webhooks/SENDER/SLUG. Okta: --source names the Okta source its events "
        "update; a secret is made and printed this once (configure it as the event hook's Authorization "
        "value). Space and Buildkite issue their own secret: pass it on stdin with --secret-stdin."
    )

    def add_arguments(self, parser):
        parser.add_argument("sender", choices=Sender.values)
        parser.add_argument("slug")
        parser.add_argument("--name", default="", help="a readable name (default: the sender and the slug)")
        parser.add_argument("--source", help="slug of the identity source (required for Okta)")
        parser.add_argument(
            "--secret-stdin", action="store_true", help="read the sender's secret from stdin instead of making one"
        )

    def handle(self, *args, sender: str, slug: str, name: str, source: str | None, secret_stdin: bool, **options):
        identity_source = None
        if source:
            identity_source = IdentitySource.objects.filter(slug=source).first()
            if identity_source is None:
                known = ", ".join(IdentitySource.objects.values_list("slug", flat=True)) or "none"
                raise CommandError(f"no identity source {source!r} (sources: {known})")
        given = Secret(sys.stdin.readline().strip()) if secret_stdin else None
        if secret_stdin and not given:
            raise CommandError("--secret-stdin: stdin held no secret")
        try:
            created = webhook_receiver_create(
                actor=Actor.cli(), sender=sender, slug=slug, name=name, identity_source=identity_source, secret=given
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        url = reverse("webhooks:receive", kwargs={"sender": sender, "slug": slug})
        self.stderr.write(f"receiver {created.receiver} at {url} (prefix it with policyhub's public URL)")
        if not given:
            self.stderr.write("its secret, shown only now (the sender's Authorization value):")
            self.stdout.write(created.secret.reveal())

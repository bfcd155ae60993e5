"""``manage.py create_service_token NAME --role R [--identity USERNAME] [--days N]``: print a new token once."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.api.choices import HubRole
from apps.api.services import service_token_create
from apps.core.actors import Actor
from apps.identities.models import Identity


def _identity(name: str) -> Identity:
    """By username, or by subject (SOURCE:EXTERNAL_ID) when the username is not unique across sources."""
    identities = Identity.objects.select_related("source")
    matches = list(identities.filter(username=name)[:2])
    source, separator, external_id = name.partition(":")
    if not matches and separator:
        matches = list(identities.filter(source__slug=source, external_id=external_id))
    if not matches:
        raise CommandError(f"no identity with username or subject {name!r}")
    if len(matches) > 1:
        subjects = ", ".join(identity.subject for identity in identities.filter(username=name))
        raise CommandError(f"username {name!r} exists in several sources; give the subject: {subjects}")
    return matches[0]


class Command(BaseCommand):
    help = (
        "Create an API service token carrying one hub role and print it. It is shown this once: only its "
        "hash is stored. With --identity, the token acts as that identity (e.g. to mint its edge tokens)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="a unique name for the token (who uses it, for what)")
        parser.add_argument("--role", required=True, choices=HubRole.values, help="the token's hub role")
        parser.add_argument(
            "--identity", help="username (or subject, SOURCE:EXTERNAL_ID) of the identity the token acts as"
        )
        parser.add_argument("--days", type=int, default=90, help="days until it expires (default 90; 0: never)")

    def handle(self, *args, name: str, role: str, identity: str | None, days: int, **options):
        if days < 0:
            raise CommandError("--days must be 0 (never expires) or more")
        try:
            issued = service_token_create(
                name=name,
                role=role,
                actor=Actor.cli(),
                identity=_identity(identity) if identity else None,
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        expiry = f"expires {issued.token.expires_at:%Y-%m-%d %H:%M} UTC" if days else "never expires"
        self.stderr.write(f"service token {name!r} (role {role}, {expiry}); shown only now, store it safely:")
        self.stdout.write(issued.plaintext.reveal())

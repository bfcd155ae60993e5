"""Writes for webhook receivers (each audited; the secret never in the audit row)."""

import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from apps.core.actors import Actor
from apps.core.crypto import Secret
from apps.core.services import model_create
from apps.identities.choices import SourceKind
from apps.identities.models import IdentitySource
from apps.webhooks.choices import Sender
from apps.webhooks.models import WebhookReceiver


@dataclass(frozen=True)
class CreatedReceiver:
    receiver: WebhookReceiver
    secret: Secret  # to configure at the sender, shown once


def webhook_receiver_create(
    *,
    actor: Actor,
    sender: str,
    slug: str,
    name: str = "",
    identity_source: IdentitySource | None = None,
    secret: Secret | None = None,
    settings: dict | None = None,
) -> CreatedReceiver:
    """A receiver at ``/webhooks/<sender>/<slug>``. ``secret``: the one its sender issued (Space's
    signing key, Buildkite's webhook token); for Okta, whose hook sends back whatever
    ``Authorization`` value it is configured with, None makes one. An Okta receiver needs the Okta
    source its events update."""
    if sender == Sender.OKTA and (identity_source is None or identity_source.kind != SourceKind.OKTA):
        raise ValidationError({"identity_source": "An Okta receiver needs the Okta source its events update."})
    if not secret and sender != Sender.OKTA:
        raise ValidationError({"secret": f"{Sender(sender).label} issues the secret: give the one it shows."})
    secret = secret if secret else Secret(secrets.token_urlsafe(32))
    data = {
        "sender": sender,
        "slug": slug,
        "name": name or f"{Sender(sender).label} {slug}",
        "identity_source": identity_source,
        "secret": secret,
        "settings": settings or {},
    }
    return CreatedReceiver(receiver=model_create(model=WebhookReceiver, actor=actor, data=data), secret=secret)

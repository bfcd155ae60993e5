"""No page of the UI ever shows a secret: with the demo loaded (source credentials, HS256 and RSA
signing keys, the identity-assertion root) and an SSH client key, every page, about every object,
and Explain with its config lines, is searched for every secret the database holds."""

import contextlib
import html
import json
import math

import pytest
from django.apps import apps

from apps.audit.models import AuditEvent
from apps.core.demo import DEMO_OKTA_TOKEN
from apps.core.fields import EncryptedTextField
from apps.gateways.models import SshTarget
from apps.identities.models import Identity
from apps.policies.models import Route
from apps.ui.views.audit import AuditListView
from tests.ui.demo import demo_with_everything
from tests.ui.pages import every_page_url, signed_in

pytestmark = pytest.mark.django_db
SHORTEST = 12  # shorter pieces (a PEM's last line, "{}") could match by chance and tell nothing


def _pieces(secret: str) -> set[str]:
    """A secret, each line of it (PEM, OpenSSH) but the armour, and each string of it as JSON."""
    pieces = {secret, *(line for line in secret.splitlines() if not line.startswith("-----"))}
    with contextlib.suppress(ValueError, AttributeError):  # not JSON, or not an object
        pieces |= {value for value in json.loads(secret).values() if isinstance(value, str)}
    return {piece.strip() for piece in pieces if len(piece.strip()) >= SHORTEST}


def _stored_secrets() -> set[str]:
    """Every value of every encrypted field in the database, revealed."""
    secrets = set()
    for model in apps.get_models():
        fields = [field for field in model._meta.concrete_fields if isinstance(field, EncryptedTextField)]
        for instance in model.objects.all() if fields else ():
            for field in fields:
                secrets |= _pieces(getattr(instance, field.attname).reveal())
    return secrets


def _pages() -> list[str]:
    per_page = AuditListView.table_pagination["per_page"]
    route = Route.objects.filter(gateway__kind="lighttpd").first()
    explain = {
        "identity": Identity.objects.filter(active=True).first().subject,
        "url": f"{route.host}{route.path_prefix}",
    }
    return [
        *every_page_url(),
        *(f"/ui/audit/?page={n}" for n in range(2, math.ceil(AuditEvent.objects.count() / per_page) + 1)),
        "/ui/explain/?" + "&".join(f"{name}={value}" for name, value in explain.items()),
    ]


def test_no_page_shows_a_secret(client):
    demo_with_everything()
    secrets = _stored_secrets()
    ssh_key = SshTarget.objects.get().private_key.reveal()
    # the search is for real secrets: the sources' tokens, the keys' material, the SSH client key
    assert DEMO_OKTA_TOKEN in secrets and ssh_key.splitlines()[1] in secrets and len(secrets) > 20
    signed_in(client, "admin")

    for url in _pages():
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        shown = [secret for secret in secrets if secret in page or html.escape(secret) in page]
        assert not shown, f"{url} shows a secret"
    assert "Enforced by" in page and "policyhub_policy.lua" in page  # the last: Explain, with config lines

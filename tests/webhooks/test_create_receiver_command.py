"""``manage.py create_webhook_receiver``: the receiver is created linked to its source, its secret
printed once and never audited; an Okta receiver without an Okta source is refused."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditEvent
from apps.webhooks.models import WebhookReceiver
from tests.factories import IdentitySourceFactory

pytestmark = pytest.mark.django_db


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_webhook_receiver", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_an_okta_receiver_is_linked_to_its_source_and_its_secret_printed_once():
    source = IdentitySourceFactory(slug="acme-okta")

    out, err = _run("okta", "acme", "--source", "acme-okta")

    receiver = WebhookReceiver.objects.get(sender="okta", slug="acme")
    secret = out.strip()
    assert receiver.identity_source == source and receiver.secret.reveal() == secret and len(secret) >= 40
    assert "/webhooks/okta/acme" in err and secret not in err
    audited = AuditEvent.objects.get(action__endswith="create", object_type__endswith="webhookreceiver")
    assert secret not in json.dumps(audited.after)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("okta", "acme"), "An Okta receiver needs the Okta source its events update."),
        (("okta", "acme", "--source", "nope"), "no identity source 'nope'"),
        (("space", "acme"), "JetBrains Space issues the secret: give the one it shows."),
    ],
)
def test_receivers_missing_what_they_need_are_refused(args, reason):
    with pytest.raises(CommandError, match=reason):
        _run(*args)
    assert not WebhookReceiver.objects.exists()


def test_a_space_receiver_takes_the_signing_key_space_issued_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("space-signing-key-from-space\n"))
    out, _ = _run("space", "deploys", "--secret-stdin")
    assert out == ""  # nothing to show: the key came from Space
    assert WebhookReceiver.objects.get(slug="deploys").secret.reveal() == "space-signing-key-from-space"

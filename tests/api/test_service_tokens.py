"""Service tokens: shown once, stored as a hash only, audited, revocable, last use recorded sparingly."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from apps.api.models import ServiceToken
from apps.api.services import (
    ServiceTokenRejected,
    service_token_authenticate,
    service_token_create,
    service_token_revoke,
)
from apps.audit.models import AuditEvent
from tests.api.conftest import ACTOR
from tests.factories import IdentityFactory, IdentitySourceFactory

pytestmark = pytest.mark.django_db


def _everything_stored() -> str:
    """Every service-token row and every audit row, as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_servicetoken")
        tokens = cursor.fetchall()
        cursor.execute("SELECT * FROM audit_auditevent")
        events = cursor.fetchall()
    return repr(tokens) + repr(events)


def test_the_plaintext_is_returned_once_and_only_its_hash_is_stored():
    issued = service_token_create(name="ci-bot", role="service", actor=ACTOR)
    plaintext = issued.plaintext.reveal()
    prefix, secret = plaintext.removeprefix("ph_").split("_", 1)
    assert (len(prefix), len(secret)) == (12, 43)
    assert issued.token.prefix == prefix
    stored = _everything_stored()
    assert secret not in stored and plaintext not in stored
    assert ServiceToken.objects.get().secret_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert "ph_" not in repr(issued) and secret not in repr(issued)
    event = AuditEvent.objects.get(action="servicetoken.create")
    assert (event.actor, event.after["name"], event.after["role"]) == ("system:test", "ci-bot", "service")
    assert event.after["secret_hash"].startswith("******** (fingerprint ")  # masked; never the hash itself
    assert issued.token.secret_hash not in event.after["secret_hash"]


def test_authentication_finds_the_token_and_refuses_what_it_should():
    identity = IdentityFactory()
    issued = service_token_create(name="ci-bot", role="service", actor=ACTOR, identity=identity)
    assert service_token_authenticate(presented=issued.plaintext.reveal()).identity == identity
    with pytest.raises(ServiceTokenRejected, match="invalid service token"):
        service_token_authenticate(presented=issued.plaintext.reveal()[:-1] + "x")
    now = timezone.now()
    expiring = service_token_create(name="short", role="service", actor=ACTOR, expires_at=now + timedelta(hours=1))
    with pytest.raises(ServiceTokenRejected, match="'short' expired at"):
        service_token_authenticate(presented=expiring.plaintext.reveal(), now=now + timedelta(hours=1))


def test_last_use_is_written_at_most_once_a_minute():
    issued = service_token_create(name="ci-bot", role="service", actor=ACTOR)
    plaintext, start = issued.plaintext.reveal(), timezone.now()
    for offset in (0, 30, 59):
        service_token_authenticate(presented=plaintext, now=start + timedelta(seconds=offset))
    assert ServiceToken.objects.get().last_used_at == start
    service_token_authenticate(presented=plaintext, now=start + timedelta(seconds=61))
    assert ServiceToken.objects.get().last_used_at == start + timedelta(seconds=61)
    assert not AuditEvent.objects.filter(action="servicetoken.update").exists()  # bookkeeping, not a change


def test_revocation_is_audited_and_idempotent():
    token = service_token_create(name="ci-bot", role="service", actor=ACTOR).token
    service_token_revoke(token=token, actor=ACTOR)
    revoked_at = ServiceToken.objects.get().revoked_at
    service_token_revoke(token=ServiceToken.objects.get(), actor=ACTOR)
    assert ServiceToken.objects.get().revoked_at == revoked_at
    event = AuditEvent.objects.get(action="servicetoken.update")
    assert event.before == {"revoked_at": None} and event.after["revoked_at"]


def test_names_are_unique_and_expiry_lies_in_the_future():
    service_token_create(name="ci-bot", role="service", actor=ACTOR)
    with pytest.raises(ValidationError, match="already exists"):
        service_token_create(name="ci-bot", role="service", actor=ACTOR)
    with pytest.raises(ValidationError, match="must expire in the future"):
        service_token_create(name="late", role="service", actor=ACTOR, expires_at=timezone.now())
    with pytest.raises(ValidationError, match="not a valid choice"):
        service_token_create(name="odd", role="root", actor=ACTOR)


def test_the_command_prints_the_token_once_bound_to_the_identity():
    identity = IdentityFactory(username="deploy-bot")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_service_token", "ci-bot", "--role", "service", "--identity", "deploy-bot", stdout=out, stderr=err
    )
    token = service_token_authenticate(presented=out.getvalue().strip())
    assert (token.name, token.role, token.identity) == ("ci-bot", "service", identity)
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)
    assert "shown only now" in err.getvalue()
    assert AuditEvent.objects.get(action="servicetoken.create").actor.startswith("cli:")


def test_the_command_names_ambiguous_and_unknown_identities():
    for slug in ("okta", "space"):
        IdentityFactory(source=IdentitySourceFactory(slug=slug), username="bot", external_id=f"{slug}-bot")
    with pytest.raises(CommandError, match="exists in several sources; give the subject: okta:okta-bot, space:"):
        call_command("create_service_token", "a", "--role", "service", "--identity", "bot", stdout=io.StringIO())
    call_command("create_service_token", "b", "--role", "service", "--identity", "space:space-bot", "--days", "0",
                 stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
    token = ServiceToken.objects.get(name="b")
    assert (token.identity.source.slug, token.expires_at) == ("space", None)
    with pytest.raises(CommandError, match="no identity with username or subject 'nobody'"):
        call_command("create_service_token", "c", "--role", "service", "--identity", "nobody")


def test_the_admin_revokes_through_the_audited_service(admin_client):
    token = service_token_create(name="ci-bot", role="service", actor=ACTOR).token
    changelist = reverse("admin:api_servicetoken_changelist")
    page = admin_client.get(changelist, {"q": "ci"}).content.decode()
    assert token.prefix in page and token.secret_hash not in page
    admin_client.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    assert ServiceToken.objects.get().revoked_at is not None
    assert AuditEvent.objects.get(action="servicetoken.update").actor == "user:admin"

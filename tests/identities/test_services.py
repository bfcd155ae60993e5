"""Identity sources, identities, groups and memberships through their services."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.core.crypto import DecryptionError
from apps.identities import services
from apps.identities.models import IdentitySource, Membership
from apps.identities.selectors import identity_get_by_reference
from tests.factories import GroupFactory, IdentityFactory, IdentitySourceFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def test_credentials_are_encrypted_at_rest_and_hidden_in_python():
    source = services.identity_source_create(
        actor=ACTOR, name="Okta", slug="okta", kind="okta", base_url="https://acme.okta.com",
        credential="00abcdefSSWS-token",
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT credential FROM identities_identitysource WHERE id = %s", [source.pk])
        stored = cursor.fetchone()[0]
    assert "00abcdef" not in stored and stored.startswith("gAAAA")  # a Fernet token
    reloaded = IdentitySource.objects.get(pk=source.pk)
    assert reloaded.credential.reveal() == "00abcdefSSWS-token"
    assert "00abcdef" not in repr(reloaded.credential) and "00abcdef" not in str(reloaded.credential)


def test_the_kek_can_rotate_old_ciphertext_stays_readable(settings):
    source = services.identity_source_create(
        actor=ACTOR, name="Space", slug="space", kind="space", base_url="https://acme.jetbrains.space",
        credential="space-token",
    )  # fmt: skip
    new_key = "bmV3LWtleS1lbmNyeXB0aW9uLWtleS0xMTExMTExMTE="
    settings.POLICYHUB_KEK = f"{new_key},{settings.POLICYHUB_KEK}"
    assert IdentitySource.objects.get(pk=source.pk).credential.reveal() == "space-token"


def test_source_kind_and_base_url_must_agree():
    with pytest.raises(ValidationError) as error:
        services.identity_source_create(actor=ACTOR, name="L", slug="l", kind="local", base_url="https://x.test")
    assert error.value.message_dict == {"base_url": ["Local sources have no base URL."]}
    with pytest.raises(ValidationError) as error:
        services.identity_source_create(actor=ACTOR, name="O", slug="o", kind="okta")
    assert error.value.message_dict == {"base_url": ["A Okta source needs its organization URL."]}


def test_external_ids_are_unique_per_source_only():
    okta, space = IdentitySourceFactory(), IdentitySourceFactory(kind="space")
    services.identity_create(actor=ACTOR, source=okta, external_id="42", username="a")
    services.identity_create(actor=ACTOR, source=space, external_id="42", username="a")
    with pytest.raises(ValidationError, match="Source and External id already exists"):
        services.identity_create(actor=ACTOR, source=okta, external_id="42", username="b")


def test_memberships_stay_inside_one_source_and_are_audited():
    identity = IdentityFactory()
    foreign_group = GroupFactory()
    with pytest.raises(ValidationError, match="same source"):
        services.membership_add(actor=ACTOR, identity=identity, group=foreign_group)
    group = GroupFactory(source=identity.source)
    services.membership_add(actor=ACTOR, identity=identity, group=group)
    assert services.membership_remove(actor=ACTOR, identity=identity, group=group)
    assert not services.membership_remove(actor=ACTOR, identity=identity, group=group)
    assert not Membership.objects.exists()
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["membership.create", "membership.delete"]


def test_identities_are_found_by_id_username_email_or_subject():
    source = IdentitySourceFactory(slug="okta")
    alice = IdentityFactory(source=source, username="alice", email="Alice@Example.test", external_id="00u1")
    for reference in (str(alice.pk), "alice", "alice@example.test", "okta:00u1"):
        assert identity_get_by_reference(reference=reference) == alice
    assert identity_get_by_reference(reference="nobody") is None
    assert alice.subject == "okta:00u1"


def test_a_wrong_kek_fails_loudly_without_leaking_the_ciphertext(settings):
    source = services.identity_source_create(
        actor=ACTOR, name="Okta", slug="okta", kind="okta", base_url="https://acme.okta.com", credential="s3cret"
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT credential FROM identities_identitysource WHERE id = %s", [source.pk])
        ciphertext = cursor.fetchone()[0]
    settings.POLICYHUB_KEK = "bmV3LWtleS1lbmNyeXB0aW9uLWtleS0xMTExMTExMTE="
    with pytest.raises(DecryptionError) as error:
        IdentitySource.objects.get(pk=source.pk)
    assert ciphertext not in str(error.value)
    assert error.value.__cause__ is None

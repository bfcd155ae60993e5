"""Key rotation on every deploy: publish 'next', switch only after it is live, retire after the overlap;
the identity-assertion key, which the proxy signs with, changes with every deploy."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.actors import Actor
from apps.credentials.assertions import assertion_key_bytes, assertion_key_derive, assertion_sign, assertion_verify
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.mint import mint_edge_token
from apps.credentials.models import AssertionRoot, SigningKey
from apps.credentials.rotate import rotation_complete, rotation_prepare
from apps.credentials.selectors import assertion_signing_key, retirement_overlap, signing_keys_accepted
from apps.credentials.services import signing_key_activate, signing_key_generate, signing_key_used
from tests.factories import GatewayFactory, IdentityFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("rotate-test")


def _states(gateway, purpose=KeyPurpose.EDGE_TOKEN) -> dict[str, str]:
    return dict(SigningKey.objects.filter(gateway=gateway, purpose=purpose).values_list("kid", "state"))


def test_prepare_publishes_a_next_key_per_purpose_once():
    gateway = GatewayFactory(kind="lighttpd")
    rotation_prepare(gateway=gateway, actor=ACTOR)
    rotation_prepare(gateway=gateway, actor=ACTOR)
    for purpose in KeyPurpose:
        assert list(_states(gateway, purpose).values()) == [KeyState.NEXT]


def test_completing_switches_to_the_published_key_and_makes_the_following_one():
    gateway = GatewayFactory(kind="haproxy")
    old = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    rotation_prepare(gateway=gateway, actor=ACTOR)
    published = SigningKey.objects.get(gateway=gateway, purpose=KeyPurpose.EDGE_TOKEN, state=KeyState.NEXT)

    changes = rotation_complete(
        gateway=gateway, actor=ACTOR, live_kids={KeyPurpose.EDGE_TOKEN: {old.kid, published.kid}}
    )

    states = _states(gateway)
    assert states[published.kid] == KeyState.ACTIVE
    assert states[old.kid] == KeyState.RETIRING
    assert list(states.values()).count(KeyState.NEXT) == 1
    assert SigningKey.objects.get(pk=old.pk).retiring_since is not None
    assert f"{published.kid} now signs {KeyPurpose.EDGE_TOKEN}s" in changes


def test_a_next_key_the_live_config_lacks_never_signs():
    gateway = GatewayFactory(kind="haproxy")
    active = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    unpublished = signing_key_generate(gateway=gateway, actor=ACTOR)
    rotation_complete(gateway=gateway, actor=ACTOR, live_kids={KeyPurpose.EDGE_TOKEN: {active.kid}})
    assert _states(gateway) == {active.kid: KeyState.ACTIVE, unpublished.kid: KeyState.NEXT}


def test_a_retiring_key_is_accepted_for_the_overlap_then_left_out_and_retired():
    gateway = GatewayFactory(kind="haproxy")
    first = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    second = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    retired_at = SigningKey.objects.get(pk=first.pk).retiring_since
    overlap = retirement_overlap(KeyPurpose.EDGE_TOKEN)
    assert overlap == timedelta(seconds=900 + 30)

    within = signing_keys_accepted(gateway=gateway, now=retired_at + overlap - timedelta(seconds=1))
    after = signing_keys_accepted(gateway=gateway, now=retired_at + overlap)
    assert {key.kid for key in within} == {first.kid, second.kid}
    assert {key.kid for key in after} == {second.kid}

    rotation_complete(gateway=gateway, actor=ACTOR, live_kids={KeyPurpose.EDGE_TOKEN: {key.kid for key in after}})
    assert _states(gateway)[first.kid] == KeyState.RETIRED


def test_a_key_that_signed_for_longer_than_the_overlap_stays_until_what_it_signed_expires(settings):
    gateway = GatewayFactory(kind="haproxy")
    first = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    long_lived = mint_edge_token(identity=IdentityFactory(), gateway=gateway, ttl=timedelta(seconds=900))
    settings.POLICYHUB_EDGE_TOKEN_MAX_TTL_SECONDS = 300  # lowered after the token was minted
    second = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)
    retired_at = SigningKey.objects.get(pk=first.pk).retiring_since
    assert retirement_overlap(KeyPurpose.EDGE_TOKEN) == timedelta(seconds=330)  # the configured floor

    past_floor = signing_keys_accepted(gateway=gateway, now=retired_at + timedelta(seconds=331))
    last_moment = signing_keys_accepted(gateway=gateway, now=long_lived.expires_at + timedelta(seconds=29))
    after = signing_keys_accepted(gateway=gateway, now=long_lived.expires_at + timedelta(seconds=30))

    assert SigningKey.objects.get(pk=first.pk).signed_until == long_lived.expires_at
    assert {key.kid for key in past_floor} == {key.kid for key in last_moment} == {first.kid, second.kid}
    assert {key.kid for key in after} == {second.kid}


def test_a_signed_link_extends_its_key_like_a_token():
    gateway = GatewayFactory(kind="haproxy")
    key = signing_key_activate(
        key=signing_key_generate(gateway=gateway, actor=ACTOR, purpose=KeyPurpose.SIGNED_LINK), actor=ACTOR
    )
    until = timezone.now() + timedelta(hours=5)
    signing_key_used(key=key, until=until)
    signing_key_used(key=key, until=until - timedelta(hours=1))  # an earlier expiry never shortens it
    assert SigningKey.objects.get(pk=key.pk).signed_until == until


def test_link_keys_overlap_the_longest_link_lifetime():
    assert retirement_overlap(KeyPurpose.SIGNED_LINK) == timedelta(seconds=86_400 + 30)


def _assert_for(key: SigningKey, *, root: str, now: float) -> str:
    """An upstream's check of an assertion signed with ``key``: returns the kid it verified."""
    arguments = {"host": "app.example.test", "method": "GET", "path": "/", "identity_headers": {}}
    header = assertion_sign(key=assertion_key_bytes(key.private_material.reveal()), kid=key.kid, ts=int(now),
                            **arguments)  # fmt: skip
    return assertion_verify(header=header, root_secret=root, now=now, **arguments).kid


def test_the_assertion_key_changes_with_every_deploy_and_upstreams_verify_each_with_the_one_root():
    gateway = GatewayFactory(kind="haproxy")
    live = []
    for _deploy in range(3):
        rotation_prepare(gateway=gateway, actor=ACTOR)
        published = assertion_signing_key(gateway=gateway)  # what the render gives the proxy
        assert published.state == KeyState.NEXT
        rotation_complete(gateway=gateway, actor=ACTOR, live_kids={KeyPurpose.IDENTITY_ASSERTION: {published.kid}})
        live.append(SigningKey.objects.get(pk=published.pk))

    assert len({key.kid for key in live}) == 3
    states = _states(gateway, KeyPurpose.IDENTITY_ASSERTION)
    # the proxy signs with one key: the one it was given stops the moment a config without it is live
    assert [states[key.kid] for key in live] == [KeyState.RETIRED, KeyState.RETIRED, KeyState.ACTIVE]
    assert list(states.values()).count(KeyState.NEXT) == 1
    root = AssertionRoot.objects.get(gateway=gateway).secret.reveal()
    now = timezone.now().timestamp()
    assert [_assert_for(key, root=root, now=now) for key in live] == [key.kid for key in live]


def test_an_assertion_kid_names_its_not_after_and_its_key_derives_from_the_root_and_kid():
    gateway = GatewayFactory(kind="lighttpd")
    key = signing_key_generate(gateway=gateway, actor=ACTOR, purpose=KeyPurpose.IDENTITY_ASSERTION)
    assert key.algorithm == "HS256" and key.public_key_pem == ""
    assert key.kid == f"ia-{int(key.not_after.timestamp())}-{key.kid[-16:]}"
    root = AssertionRoot.objects.get(gateway=gateway).secret.reveal()
    derived = assertion_key_derive(root_secret=root, kid=key.kid)
    assert assertion_key_bytes(SigningKey.objects.get(pk=key.pk).private_material.reveal()) == derived
    other = signing_key_generate(gateway=GatewayFactory(kind="lighttpd"), actor=ACTOR, purpose=key.purpose)
    assert AssertionRoot.objects.get(gateway=other.gateway).secret.reveal() != root  # a root per gateway


def test_until_a_first_deploy_the_active_assertion_key_is_the_one_rendered():
    gateway = GatewayFactory(kind="haproxy")
    assert assertion_signing_key(gateway=gateway) is None
    purpose = KeyPurpose.IDENTITY_ASSERTION
    active = signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR, purpose=purpose), actor=ACTOR)
    assert assertion_signing_key(gateway=gateway) == active
    rotation_prepare(gateway=gateway, actor=ACTOR)
    assert assertion_signing_key(gateway=gateway).state == KeyState.NEXT

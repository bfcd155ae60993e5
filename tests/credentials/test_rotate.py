"""Key rotation on every deploy: publish 'next', switch only after it is live, retire after the overlap."""

from datetime import timedelta

import pytest

from apps.core.actors import Actor
from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.models import SigningKey
from apps.credentials.rotate import rotation_complete, rotation_prepare
from apps.credentials.selectors import retirement_overlap, signing_keys_accepted
from apps.credentials.services import signing_key_activate, signing_key_generate
from tests.factories import GatewayFactory

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


def test_link_keys_overlap_the_longest_link_lifetime():
    assert retirement_overlap(KeyPurpose.SIGNED_LINK) == timedelta(seconds=86_400 + 30)

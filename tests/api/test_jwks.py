"""/.well-known/jwks.json: the public edge-token keys the proxies accept, and nothing else."""

from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from apps.credentials.choices import KeyPurpose, KeyState
from apps.credentials.models import SigningKey
from apps.credentials.selectors import retirement_overlap
from apps.credentials.services import signing_key_activate, signing_key_generate
from tests.api.conftest import ACTOR
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db


def _generation(gateway) -> SigningKey:
    """A new key becomes active; the one it replaces turns 'retiring' now."""
    return signing_key_activate(key=signing_key_generate(gateway=gateway, actor=ACTOR), actor=ACTOR)


@pytest.fixture
def keys():
    """An RS256 gateway with a key in every state, an ES256 gateway, and an HS256 (lighttpd) gateway."""
    rsa = GatewayFactory(name="rsa-edge", kind="haproxy")
    retired, past_overlap, in_overlap, active = (_generation(rsa) for _ in range(4))
    SigningKey.objects.filter(pk=retired.pk).update(state=KeyState.RETIRED)
    long_ago = timezone.now() - retirement_overlap(KeyPurpose.EDGE_TOKEN) - timedelta(seconds=1)
    SigningKey.objects.filter(pk=past_overlap.pk).update(retiring_since=long_ago)
    upcoming = signing_key_generate(gateway=rsa, actor=ACTOR)
    link_key = signing_key_generate(gateway=rsa, actor=ACTOR, purpose=KeyPurpose.SIGNED_LINK)
    ec = _generation(GatewayFactory(name="ec-edge", kind="haproxy", edge_token_algorithm="ES256"))
    hmac = _generation(GatewayFactory(name="hmac-edge", kind="lighttpd"))
    return {
        "published": {upcoming.kid, active.kid, in_overlap.kid, ec.kid},
        "withheld": {retired.kid, past_overlap.kid, link_key.kid, hmac.kid},
    }


def test_next_active_and_retiring_keys_are_published_hmac_and_retired_ones_never(client, keys):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=60"
    published = {key["kid"]: key for key in response.json()["keys"]}
    assert set(published) == keys["published"]
    for kid in keys["withheld"]:
        assert kid not in response.content.decode()
    assert all("k" not in key and "d" not in key for key in published.values())  # no secret or private part


def test_each_key_is_a_complete_jwk_equal_to_the_stored_public_key(client, keys):
    for jwk in client.get("/.well-known/jwks.json").json()["keys"]:
        stored = SigningKey.objects.get(kid=jwk["kid"])
        assert (jwk["alg"], jwk["use"]) == (stored.algorithm, "sig")
        assert "key_ops" not in jwk
        kty, parameters = {"RS256": ("RSA", {"n", "e"}), "ES256": ("EC", {"crv", "x", "y"})}[stored.algorithm]
        assert jwk["kty"] == kty and parameters <= set(jwk)
        parsed = jwt.PyJWK(jwk).key  # PyJWT reads it back: the same public numbers as the stored PEM
        own = jwt.get_algorithm_by_name(stored.algorithm).prepare_key(stored.public_key_pem)
        assert parsed.public_numbers() == own.public_numbers()


def test_the_key_set_is_public_and_ignores_credentials(client):
    response = client.get("/.well-known/jwks.json", headers={"Authorization": "Bearer not-a-token"})
    assert (response.status_code, response.json()) == (200, {"keys": []})

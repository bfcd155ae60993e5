"""Signing keys and edge tokens: the contract the proxies verify (shared/DESIGN.md, proxies.md §6.1)."""

from datetime import timedelta

import jwt
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.credentials.choices import KeyState
from apps.credentials.mint import TokenRefused, TokenSigner, mint_edge_token, sign_edge_token
from apps.credentials.models import SigningKey
from apps.credentials.selectors import signing_key_for_minting, signing_keys_accepted
from apps.credentials.services import signing_key_activate, signing_key_generate
from tests.factories import GatewayFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


@pytest.fixture
def haproxy_gateway():
    return GatewayFactory(name="haproxy-edge", kind="haproxy")


@pytest.fixture
def active_key(haproxy_gateway):
    return signing_key_activate(key=signing_key_generate(gateway=haproxy_gateway, actor=ACTOR), actor=ACTOR)


def _decode(token: str, key: SigningKey, audience: str):
    material = key.public_key_pem or key.private_material.reveal()
    return jwt.decode(token, material, algorithms=[key.algorithm], audience=audience, issuer="policyhub")


@pytest.mark.parametrize(("kind", "algorithm", "pem"), [("haproxy", "RS256", True), ("lighttpd", "HS256", False)])
def test_each_proxy_kind_gets_its_recommended_algorithm(kind, algorithm, pem):
    key = signing_key_generate(gateway=GatewayFactory(kind=kind), actor=ACTOR)
    assert key.algorithm == algorithm
    assert key.state == KeyState.NEXT
    assert key.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----") is pem  # SPKI: what jwt_verify needs


def test_the_gateway_setting_overrides_the_algorithm():
    key = signing_key_generate(gateway=GatewayFactory(kind="haproxy", edge_token_algorithm="ES256"), actor=ACTOR)
    assert key.algorithm == "ES256"
    token = sign_edge_token(signer=TokenSigner.for_key(key), subject="okta:x", roles=[])
    assert _decode(token.token, key, key.gateway.name)["sub"] == "okta:x"


def test_private_material_is_encrypted_at_rest_and_never_audited(active_key):
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_material FROM credentials_signingkey WHERE id = %s", [active_key.pk])
        stored = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in stored
    assert "PRIVATE KEY" in SigningKey.objects.get(pk=active_key.pk).private_material.reveal()
    logged = str(list(AuditEvent.objects.filter(object_type="credentials.signingkey").values("before", "after")))
    assert "PRIVATE KEY" not in logged
    assert "fingerprint" in logged


def test_a_minted_token_follows_the_contract(haproxy_gateway, active_key, airflow_admin):
    now = timezone.now()
    edge = mint_edge_token(identity=airflow_admin, gateway=haproxy_gateway, now=now)
    header = jwt.get_unverified_header(edge.token)
    assert header == {"alg": "RS256", "kid": active_key.kid, "typ": "JWT"}
    claims = _decode(edge.token, active_key, "haproxy-edge")
    assert claims["sub"] == "okta:00u1abc"
    assert claims["roles"] == ["airflow-admin", "viewer"]
    assert claims["roles_csv"] == ",airflow-admin,viewer,"
    assert claims["nbf"] == claims["iat"] == int(now.timestamp())
    assert claims["exp"] - claims["iat"] == 600  # the default lifetime
    assert all(isinstance(claims[name], int) for name in ("iat", "nbf", "exp"))
    assert "eyJ" not in repr(edge)  # the bearer token stays out of reprs


def test_a_token_for_one_gateway_is_refused_by_another(haproxy_gateway, active_key, airflow_admin):
    edge = mint_edge_token(identity=airflow_admin, gateway=haproxy_gateway)
    with pytest.raises(jwt.InvalidAudienceError):
        _decode(edge.token, active_key, "lighttpd-edge")


def test_tokens_for_inactive_identities_are_refused(haproxy_gateway, active_key, airflow_admin):
    airflow_admin.active = False
    with pytest.raises(TokenRefused, match="identity okta:00u1abc is not active"):
        mint_edge_token(identity=airflow_admin, gateway=haproxy_gateway)


@pytest.mark.parametrize("seconds", [30, 901, 3600])
def test_lifetimes_outside_one_to_fifteen_minutes_are_refused(haproxy_gateway, active_key, airflow_admin, seconds):
    with pytest.raises(TokenRefused, match="token lifetime must be between"):
        mint_edge_token(identity=airflow_admin, gateway=haproxy_gateway, ttl=timedelta(seconds=seconds))


def test_no_token_without_an_active_key_in_its_window(haproxy_gateway, airflow_admin):
    signing_key_generate(gateway=haproxy_gateway, actor=ACTOR)  # 'next' only
    with pytest.raises(TokenRefused, match="has no active signing key"):
        mint_edge_token(identity=airflow_admin, gateway=haproxy_gateway)
    key = signing_key_activate(key=SigningKey.objects.get(), actor=ACTOR)
    assert signing_key_for_minting(gateway=haproxy_gateway, now=key.not_after) is None


def test_subjects_outside_the_contract_charset_are_refused(active_key):
    with pytest.raises(TokenRefused, match="does not fit"):
        sign_edge_token(signer=TokenSigner.for_key(active_key), subject="okta:has space", roles=[])


def test_activation_retires_the_previous_key_which_proxies_still_accept(haproxy_gateway, active_key):
    newer = signing_key_activate(key=signing_key_generate(gateway=haproxy_gateway, actor=ACTOR), actor=ACTOR)
    active_key.refresh_from_db()
    assert (active_key.state, newer.state) == (KeyState.RETIRING, KeyState.ACTIVE)
    assert set(signing_keys_accepted(gateway=haproxy_gateway)) == {active_key, newer}
    with pytest.raises(ValueError, match="only a 'next' key can become active"):
        signing_key_activate(key=active_key, actor=ACTOR)


def test_the_database_allows_one_active_key_per_gateway(haproxy_gateway, active_key):
    spare = signing_key_generate(gateway=haproxy_gateway, actor=ACTOR)
    with pytest.raises(IntegrityError), transaction.atomic():
        SigningKey.objects.filter(pk=spare.pk).update(state=KeyState.ACTIVE)


def test_profile_claims_feed_identity_headers_and_cannot_split_them(haproxy_gateway, active_key, airflow_admin):
    airflow_admin.display_name = "Alice\r\nX-Policyhub-Roles: admin"
    claims = mint_edge_token(identity=airflow_admin, gateway=haproxy_gateway).claims
    assert claims["preferred_username"] == "alice@example.test"
    assert claims["name"] == "AliceX-Policyhub-Roles: admin"  # no CR/LF survives
    assert "email" in claims
    with pytest.raises(ValueError, match="unknown profile claims"):
        sign_edge_token(signer=TokenSigner.for_key(active_key), subject="x", roles=[], profile={"roles": "admin"})

"""The JWK Set (RFC 7517) of every edge-token public key the gateways' proxies accept right now.

A key is published from the moment it is 'next' (so verifiers learn it before it signs) until its
retirement overlap has passed (``signing_keys_accepted``). HS256 secrets are shared with one proxy
and never leave policyhub.
"""

from datetime import datetime

import jwt
from django.utils import timezone

from apps.credentials.choices import ASYMMETRIC_ALGORITHMS, KeyPurpose
from apps.credentials.models import SigningKey
from apps.credentials.selectors import signing_keys_accepted
from apps.policies.models import Gateway


def signing_key_jwk(key: SigningKey) -> dict:
    """One public key as a JWK: ``kty`` and its parameters from PyJWT, plus ``kid``, ``alg``, ``use``."""
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    jwk = algorithm.to_jwk(algorithm.prepare_key(key.public_key_pem), as_dict=True)
    jwk.pop("key_ops", None)  # RFC 7517 §4.3: 'use' and 'key_ops' should not appear together
    return {**jwk, "kid": key.kid, "alg": key.algorithm, "use": "sig"}


def edge_token_jwks(*, now: datetime | None = None) -> dict:
    """``{"keys": [...]}`` for every gateway, in gateway and kid order."""
    now = now or timezone.now()
    keys = []
    for gateway in Gateway.objects.order_by("name"):
        accepted = signing_keys_accepted(gateway=gateway, purpose=KeyPurpose.EDGE_TOKEN, now=now)
        keys.extend(signing_key_jwk(key) for key in accepted.filter(algorithm__in=ASYMMETRIC_ALGORITHMS))
    return {"keys": keys}

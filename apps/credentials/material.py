"""Generating key material in the formats the proxies need (see shared/reference/proxies.md §6.1).

HAProxy's ``jwt_verify`` takes only SPKI ``BEGIN PUBLIC KEY`` PEM (certificates fail with -5);
HMAC secrets are written into proxy configs, so they are URL-safe ASCII with no quoting hazards.
"""

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apps.credentials.choices import SigningAlgorithm

RSA_KEY_BITS = 2048
HMAC_SECRET_BYTES = 32


@dataclass(frozen=True)
class KeyMaterial:
    public_key_pem: str  # empty for HS256
    private_material: str  # PKCS#8 PEM, or the HMAC secret


def generate_key_material(algorithm: str) -> KeyMaterial:
    if algorithm == SigningAlgorithm.HS256:
        return KeyMaterial(public_key_pem="", private_material=secrets.token_urlsafe(HMAC_SECRET_BYTES))
    if algorithm == SigningAlgorithm.RS256:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    elif algorithm == SigningAlgorithm.ES256:
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported signing algorithm {algorithm!r}")
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyMaterial(public_key_pem=public_pem.decode(), private_material=private_pem.decode())

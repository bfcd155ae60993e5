"""In-memory signing keys for renderer and proof tests: a proxy-side key and the matching signer."""

from apps.core.crypto import Secret
from apps.credentials.material import generate_key_material
from apps.credentials.mint import TokenSigner
from apps.gateways.renderers.base import VerificationKey


def key_pair(*, kid: str, algorithm: str, gateway: str) -> tuple[VerificationKey, TokenSigner]:
    material = generate_key_material(algorithm)
    secret = Secret(material.private_material)
    verification = VerificationKey(
        kid=kid,
        algorithm=algorithm,
        public_key_pem=material.public_key_pem,
        secret=secret if algorithm == "HS256" else Secret(""),
    )
    return verification, TokenSigner(kid=kid, algorithm=algorithm, private_material=secret, audience=gateway)

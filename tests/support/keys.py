"""In-memory keys for renderer and proof tests: a proxy-side key and the matching signer, and
identity-assertion keys derived from a root."""

from datetime import UTC, datetime, timedelta

from apps.core.crypto import Secret
from apps.credentials.assertions import assertion_key_derive, assertion_key_text, assertion_kid
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


def assertion_key(root: str, *, not_after: datetime | None = None) -> VerificationKey:
    """An identity-assertion key derived from ``root`` as services.signing_key_generate derives it."""
    kid = assertion_kid(not_after=not_after or datetime.now(UTC) + timedelta(days=30))
    material = assertion_key_text(assertion_key_derive(root_secret=root, kid=kid))
    return VerificationKey(kid=kid, algorithm="HS256", public_key_pem="", secret=Secret(material))


GOLDEN_ASSERTION_ROOT = "golden-assertion-root"


def golden_assertion_key() -> VerificationKey:
    """Fixed, so that golden files do not change from run to run (not_after 2030-03-17)."""
    kid = "ia-1900000000-0123456789abcdef"
    material = assertion_key_text(assertion_key_derive(root_secret=GOLDEN_ASSERTION_ROOT, kid=kid))
    return VerificationKey(kid=kid, algorithm="HS256", public_key_pem="", secret=Secret(material))

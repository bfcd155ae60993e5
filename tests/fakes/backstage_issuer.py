"""A fake Backstage token issuer (``jwks_issuer.FakeIssuer`` with Backstage's JWKS path, ES256 keys and
its external-access claims), and its entry in ``BACKSTAGE_EXTERNAL_ACCESS``."""

import uuid

from tests.fakes.jwks_issuer import FAILURES, FakeIssuer

__all__ = ["AUDIENCE", "FAILURES", "SUBJECT", "FakeBackstage"]

AUDIENCE = "policyhub"
SUBJECT = "catalog-sync"


class FakeBackstage(FakeIssuer):
    default_algorithm = "ES256"  # Backstage's own tokens

    def __init__(self):
        super().__init__(
            issuer=f"https://backstage-{uuid.uuid4().hex[:8]}.example.test/api/auth",
            jwks_path="/api/auth/.well-known/jwks.json",
            claims={"aud": AUDIENCE, "sub": SUBJECT},
        )

    def access_entry(self, **overrides) -> dict:
        """This instance as a BACKSTAGE_EXTERNAL_ACCESS entry."""
        entry = {"url": self.jwks_url, "issuer": self.issuer, "audience": AUDIENCE, "subject_prefix": "backstage"}
        return {**entry, **overrides}

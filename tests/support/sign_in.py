"""The test OpenID Connect provider as the one policyhub signs people in with (a fixture)."""

import pytest

from tests.fakes.oidc_provider import oidc_provider


@pytest.fixture
def provider(settings):
    """The test OpenID Connect provider, configured as the one policyhub signs in with."""
    with oidc_provider() as running:
        for name, value in running.endpoints().items():
            setattr(settings, name, value)
        settings.OIDC_RP_CLIENT_ID = "policyhub"
        settings.OIDC_RP_CLIENT_SECRET = "policyhub-client-secret"
        settings.POLICYHUB_OIDC_PROVIDER_NAME = "Acme SSO"
        # what the settings derive from OIDC_OP_LOGOUT_ENDPOINT at start-up
        directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
        settings.CONTENT_SECURITY_POLICY = {
            "DIRECTIVES": {**directives, "form-action": [*directives["form-action"], running.url]}
        }
        yield running

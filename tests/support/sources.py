"""Identity sources that read the fake Okta and Space orgs (tests/fakes), as their tests create them."""

import json

from apps.core.crypto import Secret
from apps.identities.models import IdentitySource


def okta_source(okta, token: str) -> IdentitySource:
    """The source "okta" reading ``okta`` (a FakeOkta) with the API token ``token``."""
    return IdentitySource.objects.create(
        name="Acme Okta", slug="okta", kind="okta", base_url=okta.url, credential=Secret(json.dumps({"token": token}))
    )


def space_source(space, credential: str | None = None) -> IdentitySource:
    """The source "space" reading ``space`` (a FakeSpace), by default with its client credentials."""
    return IdentitySource.objects.create(
        name="Acme Space",
        slug="space",
        kind="space",
        base_url=space.url,
        credential=Secret(credential or space.client_credentials()),
    )

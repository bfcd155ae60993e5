"""Which connector reads which kind of source."""

from django.utils.module_loading import import_string

from apps.core.crypto import Secret
from apps.identities.choices import SourceKind
from apps.identities.connectors.base import Connector, PermanentError
from apps.identities.models import IdentitySource

_CONNECTORS = {
    SourceKind.SPACE: "apps.identities.connectors.space.SpaceConnector",
    SourceKind.OKTA: "apps.identities.connectors.okta.OktaConnector",
}


def connector_for(source: IdentitySource, **options) -> Connector:
    """The connector for ``source``, configured from its URL and credential; ``options`` go to the
    connector (tests pass ``sleep``). Raises ``PermanentError`` for a source nothing can read."""
    path = _CONNECTORS.get(source.kind)
    if path is None:
        raise PermanentError(f"{source.get_kind_display()} sources have nothing to sync from")
    return import_string(path).from_source(source, **options)


def credential_check(*, kind: str, credential: Secret) -> None:
    """Whether ``credential`` is what a ``kind`` source's connector reads: ``PermanentError`` with a
    reason that quotes no value if not. A kind without a connector takes no credential."""
    path = _CONNECTORS.get(kind)
    if path is None:
        if credential:
            raise PermanentError(f"{SourceKind(kind).label} sources take no credential")
        return
    import_string(path).parse_credential(credential)

from django.apps import AppConfig


class EdgeConfig(AppConfig):
    """Browser sign-in at the gateways: people reach protected tools after one OIDC login."""

    name = "apps.edge"
    label = "edge"

    def ready(self) -> None:
        from apps.edge import checks  # noqa: F401 (registers the settings checks)

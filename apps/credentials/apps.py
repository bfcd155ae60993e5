from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    """Signing keys per gateway and the edge tokens minted with them."""

    name = "apps.credentials"
    label = "credentials"

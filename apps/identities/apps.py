from django.apps import AppConfig


class IdentitiesConfig(AppConfig):
    """People, service accounts and groups mirrored from Space, Okta or entered locally."""

    name = "apps.identities"
    label = "identities"

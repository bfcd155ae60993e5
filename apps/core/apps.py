from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared bits: boundary validators, encrypted fields, actors, audited writes."""

    name = "apps.core"
    label = "core"

from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API under /api/v1/: service tokens, hub-role permissions, one error shape, the schema."""

    name = "apps.api"
    label = "api"

    def ready(self):
        # drf-spectacular finds its extensions by import: this teaches it the service-token scheme.
        from apps.api import schema  # noqa: F401

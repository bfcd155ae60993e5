from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API under /api/v1/: service tokens, Backstage JWTs, sessions, hub-role permissions, one error
    shape, the schema."""

    name = "apps.api"
    label = "api"

    def ready(self):
        # drf-spectacular finds its extensions by import: this teaches it the bearer schemes.
        from apps.api import schema  # noqa: F401
        from apps.api.backstage_jwt import backstage_instances

        backstage_instances()  # a wrong BACKSTAGE_EXTERNAL_ACCESS stops start-up, not the first request

from django.apps import AppConfig


class GatewaysConfig(AppConfig):
    """What gets onto a gateway: rendered proxy configs, their validation and proof, and deployments."""

    name = "apps.gateways"
    label = "gateways"

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Deliveries from Space, Okta and Buildkite: verified, stored in the inbox, then acted on."""

    name = "apps.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from apps.webhooks.handlers import handlers_register  # handlers import models: only once apps are ready

        handlers_register()

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Deliveries from Space, Okta and Buildkite: verified, stored in the inbox, then acted on."""

    name = "apps.webhooks"
    label = "webhooks"

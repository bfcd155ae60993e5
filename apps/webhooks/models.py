"""Webhook receivers (one per configured sender endpoint) and the inbox of deliveries they accepted."""

from django.db import models

from apps.core.fields import EncryptedTextField, SlugField
from apps.webhooks.choices import EventState, Sender


class WebhookReceiver(models.Model):
    """An endpoint ``/webhooks/<sender>/<slug>`` with the secret its sender authenticates with.

    ``secret``: Space's signing key, Okta's ``Authorization`` header value, Buildkite's webhook token.
    ``settings`` (per sender): Space ``{"auth": "signing_key"|"public_key", "public_keys": <JWKS>}``;
    Buildkite ``{"auth": "signature"|"token", "deploy_pipelines": {"<pipeline slug>": ["<gateway>", …] | "all"}}``.
    """

    sender = models.CharField(max_length=16, choices=Sender.choices)
    slug = SlugField(max_length=63)
    name = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    secret = EncryptedTextField(blank=True)
    settings = models.JSONField(default=dict, blank=True)
    identity_source = models.ForeignKey(
        "identities.IdentitySource",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="webhook_receivers",
        help_text="Okta: the source its events update. Space: the source an automation sync reads by default.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sender", "slug"]
        constraints = [models.UniqueConstraint(fields=["sender", "slug"], name="webhook_receiver_unique_slug")]

    def __str__(self) -> str:
        return f"{self.sender}/{self.slug}"


class InboundEvent(models.Model):
    """One accepted delivery, stored before its sender hears back and acted on at least once."""

    receiver = models.ForeignKey(WebhookReceiver, on_delete=models.PROTECT, related_name="events")
    sender = models.CharField(max_length=16, choices=Sender.choices)
    delivery_id = models.CharField(
        max_length=200, help_text="The sender's id for the delivery (unique per receiver): a redelivery shares it."
    )
    event_type = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(help_text="The verified body.")
    received_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=16, choices=EventState.choices, default=EventState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    outcome = models.JSONField(default=dict, blank=True, help_text="What processing did: syncs, deployments, …")
    deployments = models.ManyToManyField(
        "gateways.Deployment",
        blank=True,
        related_name="inbound_events",
        help_text="Space automation: the deployments it asked for, made (waiting) when it was accepted; "
        "its answer names them, and a redelivery hears them again.",
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["receiver", "delivery_id"], name="inbound_event_unique_delivery")
        ]
        indexes = [models.Index(fields=["state", "received_at"])]

    def __str__(self) -> str:
        return f"{self.sender} delivery {self.delivery_id} ({self.state})"

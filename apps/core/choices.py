"""Choices more than one app records."""

from django.db import models


class Trigger(models.TextChoices):
    """What started a piece of work (a deployment, a sync)."""

    UI = "ui", "Web UI"
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    SCHEDULE = "schedule", "Schedule"
    CLI = "cli", "Command line"

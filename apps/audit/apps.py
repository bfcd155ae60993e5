from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The tamper-evident, append-only audit ledger."""

    name = "apps.audit"
    label = "audit"

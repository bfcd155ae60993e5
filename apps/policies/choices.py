from django.db import models


class MatchKind(models.TextChoices):
    GROUP = "group", "Group membership"
    IDENTITY = "identity", "Single identity"
    CLAIM = "claim", "Claim (attribute) value"


class GatewayKind(models.TextChoices):
    HAPROXY = "haproxy", "HAProxy"
    LIGHTTPD = "lighttpd", "lighttpd"


class AuthMode(models.TextChoices):
    PUBLIC = "public", "Public (anyone)"
    AUTHENTICATED = "authenticated", "Any verified identity"
    ROLES = "roles", "Identities with one of the roles"


class Effect(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class IdentityHeader(models.TextChoices):
    """Identity facts a rule may forward upstream (rendered as X-Policyhub-* headers)."""

    SUBJECT = "subject", "Subject"
    USERNAME = "username", "Username"
    EMAIL = "email", "E-mail"
    DISPLAY_NAME = "display-name", "Display name"
    ROLES = "roles", "Roles"

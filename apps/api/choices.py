from django.db import models


class HubRole(models.TextChoices):
    """What a principal may do in policyhub itself (shared/DESIGN.md, "Hub roles")."""

    ADMIN = "admin", "Admin (everything)"
    EDITOR = "editor", "Editor (policies, mappings, deploy requests)"
    AUDITOR = "auditor", "Auditor (read all, audit export)"
    SERVICE = "service", "Service (automation: read, decisions, token minting)"

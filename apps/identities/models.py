"""Identity sources and what they hold: identities, groups and memberships."""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from apps.core.choices import Trigger
from apps.core.fields import EncryptedTextField, SlugField
from apps.identities.choices import IdentityKind, SourceKind, SyncMode, SyncState


class IdentitySource(models.Model):
    """An organization identities are imported from (a Space org, an Okta org) or 'local'."""

    name = models.CharField(max_length=100, unique=True)
    slug = SlugField(max_length=63, unique=True, help_text="Prefix of identity subjects, e.g. 'okta'.")
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    base_url = models.URLField(blank=True, help_text="Organization URL; empty for local sources.")
    credential = EncryptedTextField(blank=True, default="")
    sync_interval_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(5)], help_text="Empty: sync on demand only."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind=SourceKind.LOCAL) & Q(base_url="")) | (~Q(kind=SourceKind.LOCAL) & ~Q(base_url="")),
                name="identity_source_base_url_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.kind == SourceKind.LOCAL and self.base_url:
            raise ValidationError({"base_url": "Local sources have no base URL."})
        if self.kind and self.kind != SourceKind.LOCAL and not self.base_url:
            raise ValidationError({"base_url": f"A {self.get_kind_display()} source needs its organization URL."})


class Group(models.Model):
    """A group in its source: an Okta group, a Space team or role, or a local group."""

    source = models.ForeignKey(IdentitySource, on_delete=models.PROTECT, related_name="groups")
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["source_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="group_external_id_unique_per_source"),
        ]

    def __str__(self) -> str:
        return self.name


class Identity(models.Model):
    """A person or service account as its source knows it; inactive identities get no roles."""

    source = models.ForeignKey(IdentitySource, on_delete=models.PROTECT, related_name="identities")
    external_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=IdentityKind.choices, default=IdentityKind.PERSON)
    username = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    display_name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="Raw attributes (claims) from the source.")
    groups = models.ManyToManyField(Group, through="Membership", related_name="members", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source_id", "username"]
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="identity_external_id_unique_per_source"),
            models.UniqueConstraint(fields=["source", "username"], name="identity_username_unique_per_source"),
        ]
        indexes = [
            models.Index(fields=["username"]),
            # e-mail is looked up case-insensitively (email__iexact: UPPER(email) = UPPER(%s))
            models.Index(Upper("email"), name="identity_email_upper"),
        ]

    def __str__(self) -> str:
        return self.username

    @property
    def subject(self) -> str:
        """The stable name decisions and edge tokens use: '<source slug>:<external id>'."""
        return f"{self.source.slug}:{self.external_id}"

    def clean(self):
        if not isinstance(self.attributes, dict):
            raise ValidationError({"attributes": "Attributes must be a JSON object."})


class Membership(models.Model):
    """An identity's membership of a group from the same source."""

    identity = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="memberships")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["identity", "group"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.identity} in {self.group}"

    def clean(self):
        if self.identity_id and self.group_id and self.identity.source_id != self.group.source_id:
            raise ValidationError({"group": "Group and identity must come from the same source."})


class SyncRun(models.Model):
    """One import of a source: the row is its only status (state, progress, counts, messages)."""

    source = models.ForeignKey(IdentitySource, on_delete=models.CASCADE, related_name="sync_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    actor = models.CharField(max_length=200)
    mode = models.CharField(
        max_length=16,
        choices=SyncMode.choices,
        help_text="While queued: what was asked for (incremental becomes full where the source cannot give changes).",
    )
    since = models.DateTimeField(null=True, blank=True, help_text="Incremental: changes after this instant.")
    state = models.CharField(max_length=16, choices=SyncState.choices, default=SyncState.RUNNING)
    created = models.PositiveIntegerField(default=0, help_text="Identities created.")
    updated = models.PositiveIntegerField(default=0, help_text="Identities changed (deactivations apart).")
    deactivated = models.PositiveIntegerField(default=0, help_text="Identities that lost access.")
    unchanged = models.PositiveIntegerField(default=0, help_text="Identities read and found as they were.")
    counts = models.JSONField(
        default=dict, blank=True, help_text="{groups_created, memberships_added, memberships_removed, roles_changed, …}"
    )
    progress = models.JSONField(default=dict, blank=True, help_text="{stage, pages, records, requests} while running")
    timings = models.JSONField(default=dict, blank=True, help_text="{fetch, apply}: seconds")
    messages = models.JSONField(default=list, blank=True, help_text="[{at, level, text}]")
    started_at = models.DateTimeField(auto_now_add=True, help_text="When it was queued, then when it started.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["source", "state"])]

    def __str__(self) -> str:
        return f"sync #{self.pk} of {self.source_id} ({self.state})"

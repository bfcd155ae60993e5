"""Reads for identities."""

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Prefetch, Q, QuerySet

from apps.identities.choices import SourceKind, SyncMode, SyncState
from apps.identities.models import Group, Identity, IdentitySource, SyncRun
from apps.policies.roles import effective_roles_by_identity

MEMBERS_SHOWN = 100  # a group's detail lists this many members; the identity list pages through all


def identity_get_by_reference(*, reference: str) -> Identity | None:
    """Find one identity by primary key, username, e-mail or subject ('<source>:<external id>')."""
    identities = Identity.objects.select_related("source")
    if reference.isdigit():
        return identities.filter(pk=int(reference)).first()
    slug, _, external_id = reference.partition(":")
    query = Q(username=reference) | Q(email__iexact=reference)
    if external_id:
        query |= Q(source__slug=slug, external_id=external_id)
    matches = list(identities.filter(query)[:2])
    return matches[0] if len(matches) == 1 else None


def identity_for_check(
    *, identity_id: int | None = None, username: str = "", email: str = "", source: str = ""
) -> Identity:
    """The one identity an access check names by id, username or e-mail (narrowed to a source's
    slug when given); a ValidationError naming the field when none or several match."""
    if identity_id is not None:
        field, condition, value = "identity_id", "i.id = %s", identity_id
    elif username:
        field, condition, value = "username", "i.username = %s", username
    else:  # case-insensitive, as email__iexact (served by the identity_email_upper index)
        field, condition, value = "email", "UPPER(i.email) = UPPER(%s)", email
    sql = _IDENTITIES_FOR_CHECK.format(condition=f"{condition} AND s.slug = %s" if source else condition)
    found = list(Identity.objects.raw(sql, [value, source] if source else [value]))
    for identity in found:  # as select_related("source") would, with the slug (the rest loads if asked for)
        identity.source = IdentitySource.from_db(
            identity._state.db, ["id", "slug"], [identity.source_id, identity.source_slug]
        )
    where = f" in source {source}" if source else ""
    if not found:
        raise ValidationError({field: f"no identity{where} has this {field.replace('_', ' ')}"})
    if len(found) > 1:
        subjects = ", ".join(identity.subject for identity in found[:2]) + (", …" if len(found) > 2 else "")
        raise ValidationError(
            {field: f"several identities{where} have this {field.replace('_', ' ')} ({subjects}): name the source"}
        )
    return found[0]


# Every access check names its identity: in SQL, because building the query through the ORM costs
# several times running it. Up to three matches (two to name in an error), in the model's order.
_IDENTITIES_FOR_CHECK = f"""
    SELECT i.*, s.slug AS source_slug
    FROM {Identity._meta.db_table} i JOIN {IdentitySource._meta.db_table} s ON s.id = i.source_id
    WHERE {{condition}} ORDER BY i.source_id, i.username LIMIT 3
"""  # noqa: S608 (table names from the models; values are parameters)


def identity_sources_syncable() -> QuerySet[IdentitySource]:
    """Enabled sources with an API to read (every kind but local)."""
    return IdentitySource.objects.filter(enabled=True).exclude(kind=SourceKind.LOCAL).order_by("name")


def identity_sources_due(*, now: datetime) -> list[IdentitySource]:
    """Syncable sources with a schedule whose last run started at least an interval ago (or never ran)."""
    scheduled = identity_sources_syncable().exclude(sync_interval_minutes=None)
    return [
        source
        for source in scheduled.annotate(last_started=Max("sync_runs__started_at"))
        if source.last_started is None or source.last_started <= now - timedelta(minutes=source.sync_interval_minutes)
    ]


def sync_run_latest(*, source: IdentitySource) -> SyncRun | None:
    return SyncRun.objects.filter(source=source).order_by("-started_at", "-id").first()


def sync_records_expected(*, source: IdentitySource, full: bool) -> int | None:
    """Records the last successful run of the same mode read: what a progress bar can expect."""
    runs = SyncRun.objects.filter(source=source, state=SyncState.SUCCEEDED)
    if full:
        runs = runs.filter(mode=SyncMode.FULL)
    last = runs.order_by("-started_at").values_list("progress", flat=True).first()
    return (last or {}).get("records") or None


def identity_list(*, with_groups: bool = False) -> QuerySet[Identity]:
    """Identities with their source; ``with_groups``: their groups too, by name."""
    identities = Identity.objects.select_related("source")
    if with_groups:
        identities = identities.prefetch_related(Prefetch("groups", queryset=Group.objects.order_by("name", "id")))
    return identities


def identity_ids_with_role(*, role: str) -> list[int]:
    """Identities whose effective roles include ``role`` (a slug), from the bulk computation."""
    return [pk for pk, roles in effective_roles_by_identity(role=role).items() if roles]


def identity_search(*, identities: QuerySet[Identity], text: str) -> QuerySet[Identity]:
    """Identities whose username, e-mail, display name or external id contains ``text`` (any case)."""
    return identities.filter(
        Q(username__icontains=text)
        | Q(email__icontains=text)
        | Q(display_name__icontains=text)
        | Q(external_id__icontains=text)
    )


def group_list(*, with_members: bool = False) -> QuerySet[Group]:
    """Groups with their source and member count; ``with_members``: the first ``MEMBERS_SHOWN``
    members by username, as ``members_shown``."""
    groups = Group.objects.select_related("source").annotate(member_count=Count("memberships"))
    if with_members:
        members = Identity.objects.select_related("source").order_by("username", "id")[:MEMBERS_SHOWN]
        groups = groups.prefetch_related(Prefetch("members", queryset=members, to_attr="members_shown"))
    return groups


def sync_run_list() -> QuerySet[SyncRun]:
    return SyncRun.objects.select_related("source")

"""django-tables2 tables of the UI's list pages."""

import json

import django_tables2 as tables
from django.utils.html import format_html, format_html_join

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_event_as_dict
from apps.identities.models import Identity
from apps.policies.models import Application, RoleMapping, Route
from apps.policies.roles import role_grants_for
from apps.ui.templatetags.ui import timestamp


class TimestampColumn(tables.Column):
    """A moment as ``{% timestamp %}`` shows it: UTC, how long ago, and in the reader's zone in the browser."""

    def __init__(self, *args, seconds: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds = seconds

    def render(self, value) -> str:
        return timestamp(value, seconds=self.seconds)


class RoleMappingTable(tables.Table):
    role = tables.Column(accessor="role__slug", verbose_name="Role")
    grants_to = tables.Column(empty_values=(), orderable=False, verbose_name="Granted to")
    source = tables.Column(accessor="source__slug", verbose_name="Source", default="any")
    enabled = tables.BooleanColumn()
    edit = tables.LinkColumn("ui:mapping_edit", args=[tables.A("pk")], text="edit", orderable=False, verbose_name="")

    class Meta:
        model = RoleMapping
        fields = ("role", "match_kind", "grants_to", "source", "enabled", "description")
        order_by = ("role",)
        attrs = {"class": "list"}

    def render_grants_to(self, record: RoleMapping) -> str:
        if record.match_kind == "group":
            return f"members of {record.group}"
        if record.match_kind == "identity":
            return str(record.identity)
        return f"{record.claim_name} = {record.claim_value}"


SUMMARY_FIELDS = 4  # changed fields named in a folded change


class AuditEventTable(tables.Table):
    id = tables.Column(verbose_name="#")
    occurred_at = TimestampColumn(verbose_name="When", seconds=True)
    object = tables.Column(empty_values=(), orderable=False, verbose_name="Object")
    change = tables.Column(empty_values=(), orderable=False, verbose_name="Before → after")

    class Meta:
        model = AuditEvent
        fields = ("id", "occurred_at", "actor", "action", "object", "change", "request_id")
        order_by = ("-id",)
        attrs = {"class": "list audit"}

    def render_object(self, record: AuditEvent) -> str:
        return f"{record.object_type} {record.object_id}".strip() or "-"

    def render_change(self, record: AuditEvent) -> str:
        """Before and after as the API and export show them (secrets masked), folded away."""
        shown = audit_event_as_dict(record)
        before, after = shown["before"], shown["after"]
        if before is None and after is None:
            return "-"
        fields = sorted({key for value in (before, after) if isinstance(value, dict) for key in value})
        summary = ", ".join(fields[:SUMMARY_FIELDS]) + (
            f" and {len(fields) - SUMMARY_FIELDS} more" if len(fields) > SUMMARY_FIELDS else ""
        )
        return format_html(
            '<details><summary>{}</summary><div class="change"><div><h4>Before</h4><pre>{}</pre></div>'
            "<div><h4>After</h4><pre>{}</pre></div></div></details>",
            summary or "change",
            _json(before),
            _json(after),
        )


def _json(value) -> str:
    return "-" if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


class ApplicationTable(tables.Table):
    name = tables.LinkColumn("ui:application", args=[tables.A("pk")])
    backstage_entity_ref = tables.Column(verbose_name="Backstage entity")
    route_count = tables.Column(verbose_name="Routes")
    matrix = tables.LinkColumn(
        "ui:access_matrix", args=[tables.A("pk")], text="access matrix", orderable=False, verbose_name=""
    )

    class Meta:
        model = Application
        fields = ("name", "slug", "owner", "backstage_entity_ref", "route_count")
        order_by = ("name",)
        attrs = {"class": "list"}


class RouteTable(tables.Table):
    route = tables.LinkColumn("ui:route", args=[tables.A("pk")], accessor="host", verbose_name="Route")
    gateway = tables.Column(accessor="gateway__name", verbose_name="Gateway")
    methods = tables.Column(empty_values=(), orderable=False)
    upstream_url = tables.Column(verbose_name="Upstream")
    rule_count = tables.Column(verbose_name="Rules")

    class Meta:
        model = Route
        fields = ("route", "gateway", "methods", "upstream_url", "signed_links", "rule_count")
        order_by = ("route",)
        attrs = {"class": "list"}

    def render_route(self, record: Route) -> str:
        return str(record)

    def render_methods(self, record: Route) -> str:
        return ", ".join(record.methods) or "any"


GROUPS_SHOWN = 3  # per row; the identity's page lists them all


class IdentityTable(tables.Table):
    """Identities with their groups (prefetched with the page) and effective roles (worked out for
    the whole page at once, before the rows render: a fixed number of queries whatever its size)."""

    username = tables.LinkColumn("ui:identity", args=[tables.A("pk")], order_by=("username", "id"))
    display_name = tables.Column(verbose_name="Name", order_by=("display_name", "id"))
    email = tables.Column(verbose_name="E-mail", order_by=("email", "id"))
    source = tables.Column(accessor="source__name", verbose_name="Source", order_by=("source__name", "username", "id"))
    kind = tables.Column(order_by=("kind", "username", "id"))
    active = tables.BooleanColumn(order_by=("active", "username", "id"))
    groups = tables.Column(empty_values=(), orderable=False, attrs={"td": {"class": "wrap"}})
    roles = tables.Column(
        empty_values=(), orderable=False, verbose_name="Effective roles", attrs={"td": {"class": "wrap"}}
    )

    class Meta:
        model = Identity
        fields = ("username", "display_name", "email", "source", "kind", "active")
        order_by = ("username",)
        attrs = {"class": "list"}

    def before_render(self, request):
        records = self.paginated_rows.data  # the page's queryset: evaluated here, its rows then reuse it
        self.roles_by_identity = {
            identity_id: sorted({grant.role for grant in grants})
            for identity_id, grants in role_grants_for(records).items()
        }

    def render_groups(self, record: Identity) -> str:
        names = [group.name for group in record.groups.all()]
        more = len(names) - GROUPS_SHOWN
        return ", ".join(names[:GROUPS_SHOWN]) + (f" and {more} more" if more > 0 else "") if names else "—"

    def render_roles(self, record: Identity) -> str:
        roles = self.roles_by_identity.get(record.pk)
        return format_html_join(" ", '<span class="tag">{}</span>', ((role,) for role in roles)) if roles else "—"

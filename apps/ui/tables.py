"""django-tables2 tables of the UI's list pages."""

import django_tables2 as tables
from django.utils.html import format_html_join

from apps.identities.models import Identity
from apps.policies.models import RoleMapping
from apps.policies.roles import role_grants_for


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
        empty_text = "No identity matches: clear a filter, or import identities from a source."

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

"""django-tables2 tables of the UI's list pages."""

import django_tables2 as tables

from apps.policies.models import RoleMapping


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

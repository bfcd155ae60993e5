"""django-tables2 tables of the UI's list pages."""

import django_tables2 as tables

from apps.policies.models import Application, RoleMapping, Route


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

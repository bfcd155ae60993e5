"""The deploy history table: a gateway's deployments, each with the way back to its snapshot."""

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from apps.gateways.choices import DeploymentState
from apps.gateways.deploy_review import rollback_candidate
from apps.gateways.models import Deployment
from apps.ui.tables import TimestampColumn


class DeploymentHistoryTable(tables.Table):
    id = tables.LinkColumn("ui:deployment", args=[tables.A("pk")], verbose_name="#")
    state = tables.Column()
    snapshot = tables.Column(accessor="snapshot__sha256", verbose_name="Snapshot", default="-")
    trigger = tables.Column(verbose_name="Requested")
    created_at = TimestampColumn(verbose_name="At")
    finished_at = TimestampColumn(verbose_name="Finished", default="-")
    rollback = tables.Column(empty_values=(), orderable=False, verbose_name="")

    class Meta:
        model = Deployment
        fields = ("id", "state", "snapshot", "trigger", "created_at", "finished_at")
        order_by = ("-created_at",)
        attrs = {"class": "list"}

    def __init__(self, *args, live: Deployment | None = None, can_request: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.live, self.can_request = live, can_request

    def render_state(self, record: Deployment) -> str:
        superseded = record.state == DeploymentState.LIVE and (self.live is None or record.pk != self.live.pk)
        label = "Went live" if superseded else record.get_state_display()
        return format_html('<span class="state {}">{}</span>', record.state, label)

    def render_snapshot(self, value: str) -> str:
        return value[:12]

    def render_trigger(self, record: Deployment) -> str:
        return f"{record.get_trigger_display()} by {record.actor}"

    def render_rollback(self, record: Deployment) -> str:
        if self.live is not None and record.pk == self.live.pk:
            return mark_safe('<span class="state live">live now</span>')
        if not (self.can_request and rollback_candidate(deployment=record, live=self.live)):
            return ""
        query = urlencode({"snapshot": record.snapshot.sha256, "gateways": record.gateway.name})
        url = f"{reverse('ui:deploy_request_create')}?{query}"
        return format_html('<a href="{}">Roll back to this snapshot</a>', url)

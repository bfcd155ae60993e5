"""The dashboard: are identity sources fresh, are gateways live, what changed lately."""

from django.views.generic import TemplateView

from apps.ui.access import READERS, HubRoleView
from apps.ui.selectors import dashboard

PARTIALS = ("sources", "gateways", "deployments", "audit")


class DashboardView(HubRoleView, TemplateView):
    allowed_roles = READERS
    template_name = "ui/dashboard.html"

    def get_template_names(self):
        # htmx refreshes one section at a time: the same template, one of its partials
        partial = self.request.GET.get("partial")
        if self.request.htmx and partial in PARTIALS:
            return [f"{self.template_name}#{partial}"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "dashboard": dashboard()}

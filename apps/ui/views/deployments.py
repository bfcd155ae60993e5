"""Deployments: one deployment's progress, updating itself until it is final, and a gateway's
history with the way back to an older snapshot."""

from django.shortcuts import get_object_or_404
from django.views.generic import TemplateView
from django_tables2 import SingleTableMixin

from apps.api.choices import HubRole
from apps.gateways.deploy_review import deployment_progress, gateway_deployments
from apps.gateways.selectors import deployment_list, deployment_live
from apps.policies.models import Gateway
from apps.ui.access import READERS, HubRoleView
from apps.ui.deploy_tables import DeploymentHistoryTable

POLL_SECONDS = 2


class DeploymentView(HubRoleView, TemplateView):
    """A deployment's steps and messages; while it runs, htmx polls its ``progress`` partial, whose
    final form carries no trigger, so polling stops by itself."""

    allowed_roles = READERS
    template_name = "ui/deploy/deployment.html"

    def get_template_names(self):
        if self.request.htmx and self.request.GET.get("partial") == "progress":
            return [f"{self.template_name}#progress"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        deployment = get_object_or_404(deployment_list().select_related("previous"), pk=kwargs["pk"])
        return {
            **super().get_context_data(**kwargs),
            "deployment": deployment,
            "progress": deployment_progress(deployment=deployment),
            "poll_seconds": POLL_SECONDS,
            "deploy_requests": deployment.deploy_requests.order_by("-requested_at"),
        }


class GatewayDeploymentsView(HubRoleView, SingleTableMixin, TemplateView):
    """A gateway's deployments, newest first; editors may ask to roll back to one's snapshot."""

    allowed_roles = READERS
    template_name = "ui/deploy/history.html"
    table_class = DeploymentHistoryTable
    table_pagination = {"per_page": 25}

    def dispatch(self, request, *args, **kwargs):
        self.gateway = get_object_or_404(Gateway, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_table_data(self):
        return gateway_deployments(gateway=self.gateway)

    def get_table_kwargs(self):
        can_request = bool(self.request.hub_roles & {HubRole.ADMIN, HubRole.EDITOR})
        empty_text = f"No deployment of {self.gateway.name} yet: request a deploy on the Deploy page."
        return {"live": self.live, "can_request": can_request, "empty_text": empty_text}

    def get_context_data(self, **kwargs):
        self.live = deployment_live(gateway=self.gateway)
        return {**super().get_context_data(**kwargs), "gateway": self.gateway, "live": self.live}

"""The deploy pages' URLs, included into the ``ui`` namespace by apps/ui/urls.py."""

from django.urls import path

from apps.ui.views import deploy, deployments
from apps.ui.views.snapshots import SnapshotBuildView

urlpatterns = [
    path("deploy/", deploy.DeployView.as_view(), name="deploy"),
    path("deploy/snapshot/", SnapshotBuildView.as_view(default_next="ui:deploy"), name="deploy_snapshot"),
    path("deploy/requests/new/", deploy.DeployRequestCreateView.as_view(), name="deploy_request_create"),
    path("deploy/requests/<int:pk>/", deploy.DeployRequestView.as_view(), name="deploy_request"),
    path("deploy/requests/<int:pk>/approve/", deploy.DeployRequestApproveView.as_view(), name="deploy_request_approve"),
    path("deploy/requests/<int:pk>/reject/", deploy.DeployRequestRejectView.as_view(), name="deploy_request_reject"),
    path("deploy/requests/<int:pk>/cancel/", deploy.DeployRequestCancelView.as_view(), name="deploy_request_cancel"),
    path("deploy/gateways/<int:pk>/", deployments.GatewayDeploymentsView.as_view(), name="deploy_gateway"),
    path("deploy/gateways/<int:pk>/config-diff/", deploy.ConfigDiffView.as_view(), name="deploy_config_diff"),
    path("deployments/<int:pk>/", deployments.DeploymentView.as_view(), name="deployment"),
]

"""The web UI: server-rendered pages under /ui/ (names in the ``ui`` namespace)."""

from django.urls import include, path

from apps.ui.views import audit, identities, mappings, policies
from apps.ui.views.dashboard import DashboardView
from apps.ui.views.explain import ExplainView
from apps.ui.views.matrix import AccessMatrixView
from apps.ui.views.snapshots import SnapshotBuildView

app_name = "ui"

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("identities/", identities.IdentityListView.as_view(), name="identities"),
    path("identities/<int:pk>/", identities.IdentityDetailView.as_view(), name="identity"),
    path("mappings/", mappings.MappingListView.as_view(), name="mappings"),
    path("mappings/new/", mappings.MappingCreateView.as_view(), name="mapping_create"),
    path("mappings/<int:pk>/", mappings.MappingEditView.as_view(), name="mapping_edit"),
    path("mappings/<int:pk>/delete/", mappings.MappingDeleteView.as_view(), name="mapping_delete"),
    path("explain/", ExplainView.as_view(), name="explain"),
    path("audit/", audit.AuditListView.as_view(), name="audit"),
    path("applications/", policies.ApplicationListView.as_view(), name="applications"),
    path("applications/new/", policies.ApplicationCreateView.as_view(), name="application_create"),
    path("applications/<int:pk>/", policies.ApplicationView.as_view(), name="application"),
    path("applications/<int:pk>/edit/", policies.ApplicationEditView.as_view(), name="application_edit"),
    path("applications/<int:pk>/delete/", policies.ApplicationDeleteView.as_view(), name="application_delete"),
    path("applications/<int:pk>/matrix/", AccessMatrixView.as_view(), name="access_matrix"),
    path("applications/<int:pk>/routes/new/", policies.RouteCreateView.as_view(), name="route_create"),
    path("routes/<int:pk>/", policies.RouteView.as_view(), name="route"),
    path("routes/<int:pk>/edit/", policies.RouteEditView.as_view(), name="route_edit"),
    path("routes/<int:pk>/delete/", policies.RouteDeleteView.as_view(), name="route_delete"),
    path("routes/<int:pk>/rules/new/", policies.AccessRuleCreateView.as_view(), name="rule_create"),
    path("rules/<int:pk>/", policies.AccessRuleEditView.as_view(), name="rule_edit"),
    path("rules/<int:pk>/delete/", policies.AccessRuleDeleteView.as_view(), name="rule_delete"),
    path("snapshots/build/", SnapshotBuildView.as_view(), name="snapshot_build"),
    path("", include("apps.ui.urls_deploy")),
]

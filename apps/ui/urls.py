"""The web UI: server-rendered pages under /ui/ (names in the ``ui`` namespace)."""

from django.urls import include, path

from apps.ui.views import mappings
from apps.ui.views.dashboard import DashboardView

app_name = "ui"

urlpatterns = [
    path("", DashboardView.as_view(), name="dashboard"),
    path("mappings/", mappings.MappingListView.as_view(), name="mappings"),
    path("mappings/new/", mappings.MappingCreateView.as_view(), name="mapping_create"),
    path("mappings/<int:pk>/", mappings.MappingEditView.as_view(), name="mapping_edit"),
    path("mappings/<int:pk>/delete/", mappings.MappingDeleteView.as_view(), name="mapping_delete"),
    path("", include("apps.ui.urls_deploy")),
]

"""Top-level URL routes."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "policyhub"
admin.site.site_title = "policyhub"
admin.site.index_title = "Identities, policies and audit"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]

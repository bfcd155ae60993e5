"""/api/v1/: each app's router, the OpenAPI schema and its docs; anything else is a 404 in the one shape."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.api.exceptions import api_not_found

app_name = "api"

urlpatterns = [
    path("", include("apps.credentials.api.urls")),
    path("", include("apps.audit.api.urls")),
    path("", include("apps.policies.api.urls")),
    path("", include("apps.identities.api.urls")),
    path("", include("apps.gateways.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    re_path(r"^", api_not_found),
]

"""/api/v1/: each app's router, the OpenAPI schema and its docs; anything else is a 404 in the one shape."""

from csp.decorators import csp_update
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from apps.api.exceptions import api_not_found

app_name = "api"
# Swagger UI and Redoc (from the sidecar package, this origin) style their pages inline and Redoc
# runs a worker from a blob; their scripts are files (the split view serves Swagger UI's set-up as one).
DOCS_CSP = csp_update({"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]})

urlpatterns = [
    path("", include("apps.credentials.api.urls")),
    path("", include("apps.audit.api.urls")),
    path("", include("apps.policies.api.urls")),
    path("", include("apps.identities.api.urls")),
    path("", include("apps.gateways.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", DOCS_CSP(SpectacularSwaggerSplitView.as_view(url_name="api:schema")), name="docs"),
    path("redoc/", DOCS_CSP(SpectacularRedocView.as_view(url_name="api:schema")), name="redoc"),
    re_path(r"^", api_not_found),
]

"""Top-level URL routes."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from apps.credentials.api.views import JsonWebKeySetView
from apps.ui.views.auth import SignInView

admin.site.site_header = "policyhub"
admin.site.site_title = "policyhub"
admin.site.index_title = "Identities, policies and audit"

urlpatterns = [
    path("", RedirectView.as_view(url="/ui/", permanent=False)),
    path("login/", SignInView.as_view(), name="login"),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("ui/", include("apps.ui.urls")),
    path("edge/", include("apps.edge.urls")),  # browser sign-in at the gateways
    # the admin signs in where the UI does: the IdP, or a local password where enabled
    path("admin/login/", RedirectView.as_view(url="/login/", query_string=True, permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.api.urls")),
    path("webhooks/", include("apps.webhooks.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),  # the same as /api/v1/schema/
    path(".well-known/jwks.json", JsonWebKeySetView.as_view(), name="jwks"),
]

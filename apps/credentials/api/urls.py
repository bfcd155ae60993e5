"""The credentials app's API routes, mounted under /api/v1/ by apps/api/urls.py."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.credentials.api.views import EdgeTokenExchangeView, EdgeTokenViewSet

app_name = "credentials-api"

router = SimpleRouter(trailing_slash=False)
router.register("tokens", EdgeTokenViewSet, basename="edge-token")

urlpatterns = [path("tokens/exchange", EdgeTokenExchangeView.as_view(), name="edge-token-exchange"), *router.urls]

"""The credentials app's API routes, mounted under /api/v1/ by apps/api/urls.py."""

from rest_framework.routers import SimpleRouter

from apps.credentials.api.views import EdgeTokenViewSet

app_name = "credentials-api"

router = SimpleRouter(trailing_slash=False)
router.register("tokens", EdgeTokenViewSet, basename="edge-token")

urlpatterns = router.urls

"""The gateways app's API routes, mounted under /api/v1/ by apps/api/urls.py."""

from rest_framework.routers import SimpleRouter

from apps.gateways.api.views import DeploymentViewSet

app_name = "gateways-api"

router = SimpleRouter(trailing_slash=False)
router.register("deployments", DeploymentViewSet, basename="deployment")

urlpatterns = router.urls

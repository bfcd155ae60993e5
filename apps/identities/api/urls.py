"""The identities app's API routes, mounted under /api/v1/ by apps/api/urls.py."""

from rest_framework.routers import SimpleRouter

from apps.identities.api.views import GroupViewSet, IdentitySourceViewSet, IdentityViewSet, SyncRunViewSet

app_name = "identities-api"

router = SimpleRouter(trailing_slash=False)
router.register("identity-sources", IdentitySourceViewSet, basename="identity-source")
router.register("identities", IdentityViewSet, basename="identity")
router.register("groups", GroupViewSet, basename="group")
router.register("sync-runs", SyncRunViewSet, basename="sync-run")

urlpatterns = router.urls

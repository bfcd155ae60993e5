"""The audit app's API routes, mounted under /api/v1/ by apps/api/urls.py."""

from rest_framework.routers import SimpleRouter

from apps.audit.api.views import AuditEventViewSet

app_name = "audit-api"

router = SimpleRouter(trailing_slash=False)
router.register("audit-events", AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls

"""The policies app's API routes, mounted under /api/v1/ by apps/api/urls.py."""

from rest_framework.routers import SimpleRouter

from apps.policies.api import views

app_name = "policies-api"

router = SimpleRouter(trailing_slash=False)
router.register("roles", views.RoleViewSet, basename="role")
router.register("role-mappings", views.RoleMappingViewSet, basename="role-mapping")
router.register("applications", views.ApplicationViewSet, basename="application")
router.register("gateways", views.GatewayViewSet, basename="gateway")
router.register("routes", views.RouteViewSet, basename="route")
router.register("access-rules", views.AccessRuleViewSet, basename="access-rule")
router.register("snapshots", views.PolicySnapshotViewSet, basename="snapshot")

urlpatterns = router.urls

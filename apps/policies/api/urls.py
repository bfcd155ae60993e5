"""The policies app's API routes, mounted under /api/v1/ by apps/api/urls.py."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.policies.api import access_views, views

app_name = "policies-api"

router = SimpleRouter(trailing_slash=False)
router.register("roles", views.RoleViewSet, basename="role")
router.register("role-mappings", views.RoleMappingViewSet, basename="role-mapping")
router.register("applications", views.ApplicationViewSet, basename="application")
router.register("gateways", views.GatewayViewSet, basename="gateway")
router.register("routes", views.RouteViewSet, basename="route")
router.register("access-rules", views.AccessRuleViewSet, basename="access-rule")
router.register("snapshots", views.PolicySnapshotViewSet, basename="snapshot")
router.register("decisions", access_views.DecisionViewSet, basename="decision")

urlpatterns = [
    *router.urls,
    path(
        "backstage/entities/<str:kind>/<str:namespace>/<str:name>",
        access_views.BackstageEntityViewSet.as_view({"get": "retrieve"}),
        name="backstage-entity",
    ),
]

"""Applications, their routes and the routes' access rules: lists, pages and ETag-checked edit forms
writing through apps/policies/services.py."""

from django.db.models import Count
from django.urls import reverse
from django.views.generic import DetailView

from apps.policies import services
from apps.policies.api.filters import ApplicationFilterSet
from apps.policies.api.serializers import AccessRuleSerializer, ApplicationSerializer, RouteSerializer
from apps.policies.models import AccessRule, Application, Route
from apps.policies.selectors import route_rules_in_evaluation_order
from apps.ui.access import READERS, HubRoleView
from apps.ui.editing import ObjectCreateUnderView, ObjectCreateView, ObjectDeleteView, ObjectEditView
from apps.ui.forms import AccessRuleForm, ApplicationForm, RouteForm
from apps.ui.tables import ApplicationTable, RouteTable
from apps.ui.views.lists import FilteredListView

# Applications ------------------------------------------------------------------------------------


class ApplicationListView(HubRoleView, FilteredListView):
    allowed_roles = READERS
    model = Application
    table_class = ApplicationTable
    filterset_class = ApplicationFilterSet
    template_name = "ui/policies/application_list.html"

    def get_queryset(self):
        return Application.objects.annotate(route_count=Count("routes")).order_by("name")


class ApplicationView(HubRoleView, DetailView):
    """An application and its routes."""

    allowed_roles = READERS
    model = Application
    template_name = "ui/policies/application.html"

    def get_context_data(self, **kwargs):
        routes = (
            self.object.routes.select_related("gateway")
            .annotate(rule_count=Count("rules"))
            .order_by("host", "path_prefix")
        )
        table = RouteTable(routes, orderable=False)
        return {**super().get_context_data(**kwargs), "routes": table}


class _ApplicationForm:
    model = Application
    form_class = ApplicationForm
    serializer_class = ApplicationSerializer

    def success_url_for(self, instance) -> str:
        return reverse("ui:application", args=[instance.pk])


class ApplicationCreateView(_ApplicationForm, ObjectCreateView):
    def object_create(self, *, data, actor):
        return services.application_create(actor=actor, **data)


class ApplicationEditView(_ApplicationForm, ObjectEditView):
    delete_url_name = "ui:application_delete"

    def object_update(self, *, instance, data, actor):
        return services.application_update(application=instance, actor=actor, data=data)


class ApplicationDeleteView(_ApplicationForm, ObjectDeleteView):
    def object_delete(self, *, instance, actor):
        services.application_delete(application=instance, actor=actor)

    def success_url_for(self, instance) -> str:
        return reverse("ui:applications")


# Routes ------------------------------------------------------------------------------------------


class RouteView(HubRoleView, DetailView):
    """A route and its rules in the order decide() evaluates them."""

    allowed_roles = READERS
    model = Route
    template_name = "ui/policies/route.html"

    def get_queryset(self):
        return Route.objects.select_related("gateway", "application")

    def get_context_data(self, **kwargs):
        rules = route_rules_in_evaluation_order(route=self.object)
        return {**super().get_context_data(**kwargs), "rules": rules}


class _RouteForm:
    model = Route
    form_class = RouteForm
    serializer_class = RouteSerializer

    def success_url_for(self, instance) -> str:
        return reverse("ui:route", args=[instance.pk])


class RouteCreateView(_RouteForm, ObjectCreateUnderView):
    """A new route of the application in the URL (the form can move it to another)."""

    parent_model = Application

    def get_initial(self):
        return {**super().get_initial(), "application": self.parent}

    def object_create(self, *, data, actor):
        return services.route_create(actor=actor, **data)


class RouteEditView(_RouteForm, ObjectEditView):
    delete_url_name = "ui:route_delete"

    def object_update(self, *, instance, data, actor):
        return services.route_update(route=instance, actor=actor, data=data)


class RouteDeleteView(_RouteForm, ObjectDeleteView):
    def object_delete(self, *, instance, actor):
        services.route_delete(route=instance, actor=actor)

    def success_url_for(self, instance) -> str:
        return reverse("ui:application", args=[instance.application_id])


# Access rules ------------------------------------------------------------------------------------


class _RuleForm:
    model = AccessRule
    form_class = AccessRuleForm
    serializer_class = AccessRuleSerializer

    def success_url_for(self, instance) -> str:
        return reverse("ui:route", args=[instance.route_id])


class AccessRuleCreateView(_RuleForm, ObjectCreateUnderView):
    """A new rule on the route in the URL."""

    parent_model = Route

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "model_name": f"access rule on {self.parent}"}

    def object_create(self, *, data, actor):
        return services.access_rule_create(actor=actor, route=self.parent, **data)


class AccessRuleEditView(_RuleForm, ObjectEditView):
    delete_url_name = "ui:rule_delete"

    def initial_from(self, instance) -> dict:
        return {**super().initial_from(instance), "roles": list(instance.roles.all())}

    def object_update(self, *, instance, data, actor):
        roles = data.pop("roles")
        return services.access_rule_update(rule=instance, actor=actor, data=data, roles=roles)


class AccessRuleDeleteView(_RuleForm, ObjectDeleteView):
    def object_delete(self, *, instance, actor):
        services.access_rule_delete(rule=instance, actor=actor)

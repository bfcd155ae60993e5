"""Role mappings: which source groups, identities or claims hold which policyhub role."""

from apps.policies import services
from apps.policies.api.filters import RoleMappingFilterSet
from apps.policies.api.serializers import RoleMappingSerializer
from apps.policies.models import RoleMapping
from apps.ui.access import READERS, HubRoleView
from apps.ui.editing import ObjectCreateView, ObjectDeleteView, ObjectEditView
from apps.ui.forms import RoleMappingForm
from apps.ui.tables import RoleMappingTable
from apps.ui.views.lists import EmptyTextMixin, FilteredListView


class MappingListView(HubRoleView, EmptyTextMixin, FilteredListView):
    allowed_roles = READERS
    empty_text = (
        "No role mappings yet, so nobody holds a role: add one (New mapping) to grant a role to a group's "
        "members, one identity, or a claim's holders."
    )
    no_match_text = "No role mapping matches these filters: clear a filter."
    model = RoleMapping
    table_class = RoleMappingTable
    filterset_class = RoleMappingFilterSet
    template_name = "ui/mappings/list.html"

    def get_queryset(self):
        return RoleMapping.objects.select_related("role", "group", "identity", "source")


class _MappingForm:
    model = RoleMapping
    form_class = RoleMappingForm
    serializer_class = RoleMappingSerializer
    success_url_name = "ui:mappings"


class MappingCreateView(_MappingForm, ObjectCreateView):
    def object_create(self, *, data, actor):
        return services.role_mapping_create(actor=actor, **data)


class MappingEditView(_MappingForm, ObjectEditView):
    delete_url_name = "ui:mapping_delete"

    def object_update(self, *, instance, data, actor):
        return services.role_mapping_update(mapping=instance, actor=actor, data=data)


class MappingDeleteView(_MappingForm, ObjectDeleteView):
    def object_delete(self, *, instance, actor):
        services.role_mapping_delete(mapping=instance, actor=actor)

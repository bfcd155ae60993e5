"""The role-mapping pages: a filterable table, create, edit and delete through the services, inline
validation errors, and an edit or delete of a mapping changed since the form was opened refused
with who changed it."""

import pytest

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.policies import services
from apps.policies.models import RoleMapping
from tests.factories import GroupFactory, RoleFactory, RoleMappingFactory
from tests.ui.pages import form_etag, signed_in

pytestmark = pytest.mark.django_db


def test_the_table_lists_mappings_and_filters_them_with_the_apis_filters(client):
    signed_in(client, "auditor")
    wanted, other = RoleMappingFactory(role=RoleFactory(slug="airflow-admin")), RoleMappingFactory()

    everything = client.get("/ui/mappings/").content.decode()
    filtered = client.get("/ui/mappings/?role=airflow-admin").content.decode()

    assert "airflow-admin" in everything and other.role.slug in everything
    assert f"members of {wanted.group}" in filtered and other.role.slug not in filtered


def test_an_editor_creates_a_mapping_which_is_audited_as_them(client):
    user = signed_in(client, "editor")
    role, group = RoleFactory(slug="viewer"), GroupFactory(name="staff")

    answer = client.post(
        "/ui/mappings/new/", {"role": "viewer", "match_kind": "group", "group": group.pk, "enabled": "on"}
    )

    assert (answer.status_code, answer["Location"]) == (302, "/ui/mappings/")
    mapping = RoleMapping.objects.get()
    assert (mapping.role, mapping.group, mapping.enabled) == (role, group, True)
    assert AuditEvent.objects.get(action="rolemapping.create").actor.endswith(user.username)


def test_what_the_service_refuses_shows_on_the_form(client):
    signed_in(client, "editor")
    RoleFactory(slug="viewer")

    answer = client.post("/ui/mappings/new/", {"role": "viewer", "match_kind": "group"})  # no group

    assert answer.status_code == 200
    assert 'class="field invalid"' in answer.content.decode() or "error" in answer.content.decode()
    assert not RoleMapping.objects.exists()


def test_an_edit_saves_when_nobody_changed_the_mapping_meanwhile(client):
    signed_in(client, "editor")
    mapping = RoleMappingFactory(description="old")
    form = client.get(f"/ui/mappings/{mapping.pk}/").content.decode()

    answer = client.post(
        f"/ui/mappings/{mapping.pk}/",
        {"etag": form_etag(form), "role": mapping.role.slug, "match_kind": "group", "group": mapping.group.pk,
         "enabled": "on", "description": "the on-call admins"},
    )  # fmt: skip

    assert answer.status_code == 302
    mapping.refresh_from_db()
    assert mapping.description == "the on-call admins"


def test_an_edit_of_a_mapping_changed_since_the_form_was_opened_is_refused_naming_who_changed_it(client):
    signed_in(client, "editor")
    mapping = RoleMappingFactory(description="old")
    form = client.get(f"/ui/mappings/{mapping.pk}/").content.decode()
    services.role_mapping_update(mapping=mapping, actor=Actor.parse("user:carol"), data={"description": "carol's"})

    answer = client.post(
        f"/ui/mappings/{mapping.pk}/",
        {"etag": form_etag(form), "role": mapping.role.slug, "match_kind": "group", "group": mapping.group.pk,
         "description": "mine"},
    )  # fmt: skip

    page = answer.content.decode()
    assert answer.status_code == 200
    assert "was changed by user:carol" in page and "since you opened it" in page
    assert "mine</textarea>" in page  # what was typed is kept
    mapping.refresh_from_db()
    assert mapping.description == "carol's"


def test_a_delete_of_a_mapping_changed_since_is_refused_and_a_current_one_goes(client):
    signed_in(client, "editor")
    mapping = RoleMappingFactory()
    stale = form_etag(client.get(f"/ui/mappings/{mapping.pk}/delete/").content.decode())
    services.role_mapping_update(mapping=mapping, actor=Actor.parse("user:carol"), data={"enabled": False})

    refused = client.post(f"/ui/mappings/{mapping.pk}/delete/", {"etag": stale})
    assert refused.status_code == 200 and "since you opened it" in refused.content.decode()
    assert RoleMapping.objects.filter(pk=mapping.pk).exists()

    current = form_etag(client.get(f"/ui/mappings/{mapping.pk}/delete/").content.decode())
    assert client.post(f"/ui/mappings/{mapping.pk}/delete/", {"etag": current}).status_code == 302
    assert not RoleMapping.objects.filter(pk=mapping.pk).exists()


def test_an_auditor_can_read_but_not_write(client):
    signed_in(client, "auditor")
    mapping = RoleMappingFactory()
    assert client.get("/ui/mappings/").status_code == 200
    assert client.post(f"/ui/mappings/{mapping.pk}/delete/", {"etag": "x"}).status_code == 403
    assert RoleMapping.objects.filter(pk=mapping.pk).exists()

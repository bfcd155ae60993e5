"""The Django admin: every model is browsable, writes made there are validated and audited."""

import pytest
from django.contrib import admin
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.identities.models import IdentitySource
from apps.policies.models import AccessRule, Role
from tests.factories import IdentityFactory, RoleFactory, RouteFactory

pytestmark = pytest.mark.django_db
PROJECT_MODELS = [
    m
    for m in admin.site._registry
    if m._meta.app_label in {"identities", "policies", "audit", "credentials", "api", "webhooks"}
]


@pytest.fixture
def staff(admin_client):
    IdentityFactory()
    RouteFactory()
    return admin_client


@pytest.mark.parametrize("model", PROJECT_MODELS, ids=lambda m: m._meta.label)
def test_every_model_has_a_searchable_changelist(staff, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert staff.get(url, {"q": "example"}).status_code == 200


def test_admin_writes_are_audited_with_the_signed_in_user(staff):
    response = staff.post(reverse("admin:policies_role_add"), {"slug": "airflow-admin", "name": "", "description": ""})
    assert response.status_code == 302
    role = Role.objects.get(slug="airflow-admin")
    event = AuditEvent.objects.get(action="role.create")
    assert (event.actor, event.object_id) == ("user:admin", str(role.pk))


def test_admin_validation_shows_field_errors_and_saves_nothing(staff):
    route = RouteFactory()
    response = staff.post(
        reverse("admin:policies_accessrule_add"),
        {"route": route.pk, "effect": "allow", "auth_mode": "roles", "allowed_cidrs": '["10.0.0.1/8"]',
         "identity_headers": "[]", "cache_seconds": 0, "description": ""},
    )  # fmt: skip
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "did you mean 10.0.0.0/8" in errors["allowed_cidrs"][0]
    assert errors["roles"] == ["A rule in 'roles' mode needs at least one role."]
    assert not AccessRule.objects.exists()


def test_admin_many_to_many_changes_are_in_the_audit_row(staff):
    route, role = RouteFactory(), RoleFactory(slug="ops")
    staff.post(
        reverse("admin:policies_accessrule_add"),
        {"route": route.pk, "effect": "allow", "auth_mode": "roles", "roles": [role.pk], "allowed_cidrs": "[]",
         "identity_headers": '["email"]', "cache_seconds": 0, "description": ""},
    )  # fmt: skip
    event = AuditEvent.objects.get(action="accessrule.create")
    assert event.after["roles"] == [role.pk]


def test_admin_never_shows_a_stored_credential(staff):
    source = IdentitySource.objects.create(
        name="Okta", slug="okta", kind="okta", base_url="https://acme.okta.com", credential="ssws-secret-value"
    )
    page = staff.get(reverse("admin:identities_identitysource_change", args=[source.pk])).content.decode()
    assert "ssws-secret-value" not in page
    form = {"name": "Okta", "slug": "okta", "kind": "okta", "base_url": "https://acme.okta.com", "credential": ""}
    staff.post(reverse("admin:identities_identitysource_change", args=[source.pk]), {**form, "enabled": "on"})
    source.refresh_from_db()
    assert source.credential.reveal() == "ssws-secret-value"  # blank means keep


def test_the_audit_log_is_read_only_in_the_admin(staff):
    RoleFactory()
    event = AuditEvent.objects.create(occurred_at="2026-01-01T00:00Z", actor="a", action="b", prev_hash="0", hash="1")
    assert staff.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert staff.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403


def test_access_rule_list_shows_roles_without_a_query_per_row(staff, django_assert_max_num_queries):
    role = RoleFactory(slug="ops")
    for _ in range(5):
        rule = AccessRule.objects.create(route=RouteFactory(), auth_mode="roles")
        rule.roles.set([role])
    with django_assert_max_num_queries(8):
        page = staff.get(reverse("admin:policies_accessrule_changelist")).content.decode()
    assert page.count('<td class="field-role_list">ops</td>') == 5

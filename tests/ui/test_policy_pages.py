"""The application, route and access-rule pages: lists and pages, create, edit and delete through
the services, the services' validation errors on their fields, edits and deletes of objects changed
since the form was opened refused naming who changed them, rules listed in decide()'s order, and
auditors reading without writing."""

import pytest

from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.policies import services
from apps.policies.models import AccessRule, Application, Route
from apps.policies.selectors import compiled_policy
from tests.factories import ApplicationFactory, GatewayFactory, RoleFactory, RouteFactory
from tests.ui.pages import field_errors, form_etag, signed_in, table_rows

pytestmark = pytest.mark.django_db
CAROL = Actor.parse("user:carol")


def _rule(route, **fields) -> AccessRule:
    return services.access_rule_create(actor=Actor.system("test"), route=route, **fields)


def _page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


# Applications ------------------------------------------------------------------------------------


def test_the_list_shows_applications_with_their_route_counts_and_an_empty_state(client):
    signed_in(client, "auditor")
    assert "No applications yet" in _page(client.get("/ui/applications/"))
    airflow = ApplicationFactory(name="Airflow")
    RouteFactory(application=airflow), RouteFactory(application=airflow)

    rows = table_rows(_page(client.get("/ui/applications/")), "list")

    assert [cell[2] for cell in rows[1]][:5] == ["Airflow", airflow.slug, "—", "—", "2"]


def test_an_editor_creates_an_application_audited_as_them_and_lands_on_its_page(client):
    user = signed_in(client, "editor")

    answer = client.post("/ui/applications/new/", {"name": "Airflow", "slug": "airflow", "owner": "data"})

    application = Application.objects.get()
    assert (answer.status_code, answer["Location"]) == (302, f"/ui/applications/{application.pk}/")
    assert AuditEvent.objects.get(action="application.create").actor == f"user:{user.username}"
    page = _page(client.get(answer["Location"]))
    assert "No routes yet" in page and "Access matrix" in page


def test_what_the_service_refuses_shows_on_the_field(client):
    signed_in(client, "editor")
    ApplicationFactory(backstage_entity_ref="component:default/airflow")

    answer = client.post(
        "/ui/applications/new/", {"name": "Airflow 2", "slug": "airflow-2", "backstage_entity_ref": "airflow"}
    )

    assert answer.status_code == 200
    errors = field_errors(answer.content.decode(), "backstage_entity_ref")
    assert errors == ["Another application is already bound to component:default/airflow."]
    assert Application.objects.count() == 1


def test_an_application_edit_after_someone_elses_is_refused_naming_them(client):
    signed_in(client, "editor")
    application = ApplicationFactory(owner="data")
    url = f"/ui/applications/{application.pk}/edit/"
    etag = form_etag(_page(client.get(url)))
    services.application_update(application=application, actor=CAROL, data={"owner": "carol's team"})

    page = _page(client.post(url, {"etag": etag, "name": application.name, "slug": application.slug, "owner": "mine"}))

    assert f"{application.name} was changed by user:carol" in page and "since you opened it" in page
    assert 'value="mine"' in page  # what was typed stays
    application.refresh_from_db()
    assert application.owner == "carol's team"
    fresh = form_etag(_page(client.get(url)))
    fields = {"etag": fresh, "name": application.name, "slug": application.slug, "owner": "mine"}
    assert client.post(url, fields).status_code == 302
    application.refresh_from_db()
    assert application.owner == "mine"


def test_an_application_with_routes_is_not_deleted_and_says_why(client):
    signed_in(client, "editor")
    route = RouteFactory(host="airflow.example.test")
    url = f"/ui/applications/{route.application_id}/delete/"

    refused = _page(client.post(url, {"etag": form_etag(_page(client.get(url)))}))

    assert "is still used by 1 other object(s) (airflow.example.test/)" in refused
    route.delete()
    assert client.post(url, {"etag": form_etag(_page(client.get(url)))})["Location"] == "/ui/applications/"
    assert not Application.objects.exists()


# Routes ------------------------------------------------------------------------------------------


def _route_form(**fields) -> dict:
    return {"path_prefix": "/", "upstream_url": "http://127.0.0.1:9000", **fields}


def test_a_route_is_created_under_its_application_with_the_services_normalization(client):
    signed_in(client, "editor")
    application = ApplicationFactory()
    gateway = GatewayFactory(public_hostnames=["*.example.test"])
    form = _page(client.get(f"/ui/applications/{application.pk}/routes/new/"))
    assert f'<option value="{application.slug}" selected>' in form

    answer = client.post(
        f"/ui/applications/{application.pk}/routes/new/",
        _route_form(application=application.slug, gateway=gateway.name, host="Airflow.Example.TEST",
                    path_prefix="/admin/", methods=["GET", "POST"], signed_links="on"),
    )  # fmt: skip

    route = Route.objects.get()
    assert answer["Location"] == f"/ui/routes/{route.pk}/"
    assert (route.host, route.path_prefix, route.methods, route.signed_links) == (
        "airflow.example.test", "/admin", ["GET", "POST"], True
    )  # fmt: skip
    application_page = _page(client.get(f"/ui/applications/{application.pk}/"))
    assert "airflow.example.test/admin" in application_page and "GET, POST" in application_page


def test_a_host_the_gateway_does_not_serve_is_an_error_on_the_host_field(client):
    signed_in(client, "editor")
    gateway = GatewayFactory(name="edge", public_hostnames=["*.example.test"])
    route = RouteFactory(gateway=gateway, host="airflow.example.test")
    url = f"/ui/routes/{route.pk}/edit/"
    fields = {"etag": form_etag(_page(client.get(url))), "application": route.application.slug, "gateway": "edge"}

    page = _page(client.post(url, _route_form(**fields, host="airflow.elsewhere.test")))

    assert field_errors(page, "host") == [
        "Gateway edge does not serve airflow.elsewhere.test; its public host names are *.example.test."
    ]
    route.refresh_from_db()
    assert route.host == "airflow.example.test"


def test_a_route_edit_after_someone_elses_is_refused_and_a_delete_goes_back_to_the_application(client):
    signed_in(client, "editor")
    route = RouteFactory(host="airflow.example.test")
    etag = form_etag(_page(client.get(f"/ui/routes/{route.pk}/edit/")))
    services.route_update(route=route, actor=CAROL, data={"description": "carol's"})
    fields = _route_form(etag=etag, application=route.application.slug, gateway=route.gateway.name,
                         host="airflow.example.test", description="mine")  # fmt: skip

    page = _page(client.post(f"/ui/routes/{route.pk}/edit/", fields))

    assert "airflow.example.test/ was changed by user:carol" in page
    delete = f"/ui/routes/{route.pk}/delete/"
    assert f'href="{delete}"' in page
    answer = client.post(delete, {"etag": form_etag(_page(client.get(delete)))})
    assert answer["Location"] == f"/ui/applications/{route.application_id}/"
    assert not Route.objects.exists()


# Access rules ------------------------------------------------------------------------------------


def _rule_form(**fields) -> dict:
    return {"effect": "allow", "auth_mode": "roles", "cache_seconds": "0", **fields}


def test_a_rule_is_created_from_every_field_of_the_form(client):
    signed_in(client, "editor")
    route = RouteFactory()
    RoleFactory(slug="airflow-admin"), RoleFactory(slug="viewer")

    answer = client.post(
        f"/ui/routes/{route.pk}/rules/new/",
        _rule_form(roles=["airflow-admin", "viewer"], allowed_cidrs="10.0.0.0/8\n\n 2001:db8::/32 \n",
                   rate_limit_per_minute="120", identity_headers=["email", "roles"], cache_seconds="60",
                   description="admins from the office"),
    )  # fmt: skip

    rule = AccessRule.objects.get()
    assert answer["Location"] == f"/ui/routes/{route.pk}/"
    assert sorted(role.slug for role in rule.roles.all()) == ["airflow-admin", "viewer"]
    assert (rule.allowed_cidrs, rule.rate_limit_per_minute, rule.identity_headers, rule.cache_seconds) == (
        ["10.0.0.0/8", "2001:db8::/32"], 120, ["email", "roles"], 60
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"auth_mode": "roles"}, "roles", "A rule in 'roles' mode needs at least one role."),
        ({"effect": "deny", "auth_mode": "authenticated", "rate_limit_per_minute": "5"}, "rate_limit_per_minute",
         "Deny rules only deny; they cannot set upstream behaviour."),
        ({"auth_mode": "authenticated", "allowed_cidrs": "10.0.0.1/8"}, "allowed_cidrs", "10.0.0.0/8"),
        ({"auth_mode": "public", "identity_headers": ["email"]}, "identity_headers",
         "Public rules have no identity to forward."),
    ],
)  # fmt: skip
def test_what_the_rule_services_refuse_shows_on_its_field(client, fields, field, message):
    signed_in(client, "editor")
    route = RouteFactory()

    page = _page(client.post(f"/ui/routes/{route.pk}/rules/new/", _rule_form(**fields)))

    assert any(message in error for error in field_errors(page, field) or ())
    assert not AccessRule.objects.exists()


def test_a_rule_edit_shows_its_values_and_is_refused_after_someone_elses_change(client):
    signed_in(client, "editor")
    route = RouteFactory()
    admin, viewer = RoleFactory(slug="airflow-admin"), RoleFactory(slug="viewer")
    rule = _rule(route, auth_mode="roles", roles=[admin], allowed_cidrs=["10.0.0.0/8", "192.168.0.0/16"])
    url = f"/ui/rules/{rule.pk}/"
    form = _page(client.get(url))
    assert '<option value="airflow-admin" selected>' in form
    assert "10.0.0.0/8\n192.168.0.0/16</textarea>" in form
    services.access_rule_update(rule=rule, actor=CAROL, data={}, roles=[admin, viewer])

    page = _page(client.post(url, _rule_form(etag=form_etag(form), roles=["airflow-admin"], cache_seconds="30")))

    assert "was changed by user:carol" in page and "since you opened it" in page
    rule.refresh_from_db()
    assert (sorted(role.slug for role in rule.roles.all()), rule.cache_seconds) == (["airflow-admin", "viewer"], 0)
    answer = client.post(url, _rule_form(etag=form_etag(_page(client.get(url))), roles=["viewer"]))
    assert answer["Location"] == f"/ui/routes/{route.pk}/"
    assert [role.slug for role in rule.roles.all()] == ["viewer"]
    assert AuditEvent.objects.filter(action="accessrule.update", object_id=str(rule.pk)).count() == 2


def test_the_route_page_lists_its_rules_in_the_order_decide_reads_them(client):
    signed_in(client, "auditor")
    route = RouteFactory(host="airflow.example.test")
    admin, viewer = RoleFactory(slug="airflow-admin"), RoleFactory(slug="viewer")
    _rule(route, auth_mode="public", cache_seconds=5)
    _rule(route, auth_mode="authenticated")
    _rule(route, auth_mode="roles", roles=[viewer], cache_seconds=10)
    _rule(route, effect="deny", auth_mode="authenticated", allowed_cidrs=["192.0.2.0/24"])
    _rule(route, auth_mode="roles", roles=[admin])
    _rule(route, effect="deny", auth_mode="roles", roles=[viewer])
    snapshot = services.snapshot_build(actor=Actor.system("test"))
    (compiled,) = compiled_policy(snapshot=snapshot).routes

    rows = table_rows(_page(client.get(f"/ui/routes/{route.pk}/")), "rules")[1:]

    shown = [(cells[1][2], cells[2][2], cells[7][2]) for cells in rows]
    assert [key for _, _, key in shown] == [rule.key for rule in (*compiled.deny_rules, *compiled.allow_rules)]
    assert [(effect, who) for effect, who, _ in shown][:2] == [
        ("Deny", "Any verified identity"),
        ("Deny", "roles: viewer"),
    ]
    assert [who for _, who, _ in shown][2:] == [
        "roles: airflow-admin",
        "roles: viewer",
        "Any verified identity",
        "Public (anyone)",
    ]


def test_a_rule_is_deleted_back_to_its_route(client):
    signed_in(client, "editor")
    rule = _rule(RouteFactory(), auth_mode="authenticated")
    url = f"/ui/rules/{rule.pk}/delete/"

    answer = client.post(url, {"etag": form_etag(_page(client.get(url)))})

    assert answer["Location"] == f"/ui/routes/{rule.route_id}/"
    assert not AccessRule.objects.exists()
    assert AuditEvent.objects.filter(action="accessrule.delete", object_id=str(rule.pk)).exists()


def test_an_auditor_reads_every_page_but_writes_nothing(client):
    signed_in(client, "auditor")
    rule = _rule(RouteFactory(), auth_mode="authenticated")
    route, application = rule.route, rule.route.application

    for page in (f"/ui/applications/{application.pk}/", f"/ui/routes/{route.pk}/"):
        content = _page(client.get(page))
        assert "New route" not in content and "New rule" not in content and ">edit<" not in content
    for url, data in [
        (f"/ui/rules/{rule.pk}/delete/", {"etag": "x"}),
        (f"/ui/routes/{route.pk}/rules/new/", _rule_form(auth_mode="public")),
        (f"/ui/applications/{application.pk}/edit/", {"etag": "x", "name": "x", "slug": "x"}),
    ]:
        assert client.post(url, data).status_code == 403
    assert AccessRule.objects.count() == 1 and Application.objects.get().name == application.name

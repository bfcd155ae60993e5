"""Every page of the web UI with every kind of visitor: each answers exactly as its declared hub
roles say. A page added to apps/ui/urls.py is walked here without further ado (one that takes
arguments needs a sample in the ``samples`` fixture, or this fails and says so)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from apps.api.choices import HubRole
from apps.core.actors import Actor
from apps.gateways.models import DeployRequest
from apps.policies import services
from apps.policies.services import snapshot_build
from apps.ui.access import HubRoleView
from tests.factories import DeploymentFactory, IdentityFactory, RoleMappingFactory, RouteFactory
from tests.ui.pages import ui_pages

pytestmark = pytest.mark.django_db
VISITORS = ("anonymous", "no-role", HubRole.ADMIN, HubRole.EDITOR, HubRole.AUDITOR)


@pytest.fixture
def samples() -> dict[str, dict]:
    """url name -> kwargs, for the pages about one object."""
    mapping = RoleMappingFactory()
    route = RouteFactory()
    rule = services.access_rule_create(actor=Actor.system("test"), route=route, auth_mode="authenticated")
    application, route, rule = {"pk": route.application_id}, {"pk": route.pk}, {"pk": rule.pk}
    snapshot = snapshot_build(actor=Actor.system("samples"))
    deployment = DeploymentFactory(snapshot=snapshot)
    deploy_request = DeployRequest.objects.create(
        snapshot=snapshot, requested_by=get_user_model().objects.create_user("requester")
    )
    return {
        "mapping_edit": {"pk": mapping.pk},
        "mapping_delete": {"pk": mapping.pk},
        **dict.fromkeys(["application", "application_edit", "application_delete", "access_matrix"], application),
        **dict.fromkeys(["route_create"], application),
        **dict.fromkeys(["route", "route_edit", "route_delete", "rule_create"], route),
        **dict.fromkeys(["rule_edit", "rule_delete"], rule),
        "identity": {"pk": IdentityFactory().pk},
        **{f"deploy_request{page}": {"pk": deploy_request.pk} for page in ("", "_approve", "_reject", "_cancel")},
        "deploy_gateway": {"pk": deployment.gateway.pk},
        "deploy_config_diff": {"pk": deployment.gateway.pk},
        "deployment": {"pk": deployment.pk},
    }


PAGES = ui_pages()


def test_every_page_declares_the_hub_roles_it_admits():
    assert PAGES
    for name, view, _ in PAGES:
        assert issubclass(view, HubRoleView), f"ui:{name} ({view.__name__}) is not a HubRoleView"
        assert view.allowed_roles <= {HubRole.ADMIN, HubRole.EDITOR, HubRole.AUDITOR}, name


def _client(client, visitor: str):
    if visitor == "anonymous":
        return client
    user = get_user_model().objects.create_user(f"visitor-{visitor}")
    if visitor != "no-role":
        user.groups.add(Group.objects.get_or_create(name=f"policyhub-{visitor}")[0])
    client.force_login(user)
    return client


@pytest.mark.parametrize("visitor", VISITORS)
@pytest.mark.parametrize(("name", "view", "takes_arguments"), PAGES, ids=[name for name, _, _ in PAGES])
def test_each_page_answers_each_visitor_as_its_roles_say(client, samples, visitor, name, view, takes_arguments):
    if takes_arguments and name not in samples:
        pytest.fail(f"ui:{name} takes arguments: add a sample to the samples fixture")
    url = reverse(f"ui:{name}", kwargs=samples.get(name))

    response = _client(client, visitor).get(url)

    if visitor == "anonymous":
        assert (response.status_code, response["Location"]) == (302, f"/login/?next={url}")
    elif visitor == "no-role":
        assert response.status_code == 403
        assert b"You have no access to policyhub" in response.content
    elif visitor in view.allowed_roles:
        assert response.status_code == 200
    else:
        assert response.status_code == 403
        assert b"This page is not for your role" in response.content

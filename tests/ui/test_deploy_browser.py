"""A deploy through the UI in a real browser, end to end: an editor builds a snapshot of a changed
policy, reads who gains access, requests the deploy; another admin, in a browser of their own,
approves it; a real Celery worker deploys it to a running HAProxy while the deployment's page
follows it by polling until it is live, then stops polling."""

import pytest

from apps.core.actors import Actor
from apps.gateways.choices import DeploymentState
from apps.gateways.models import DeployRequest
from apps.policies import services as policies
from apps.policies.choices import AuthMode
from apps.policies.models import Route
from tests.factories import IdentityFactory, IdentitySourceFactory
from tests.support.browser import screenshot, signed_in_page
from tests.support.deploy import deploy_stage

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ACTOR = Actor.system("browser-test")
DEPLOY_DEADLINE_MS = 180_000


def _grant_a_new_route(stage) -> None:
    """ann (okta:ann) gets the role ops, which a new route /ops admits: a change not yet in any snapshot."""
    source = IdentitySourceFactory(slug="okta")
    ann = IdentityFactory(source=source, external_id="ann", username="ann@acme.test")
    role = policies.role_create(actor=ACTOR, slug="ops")
    policies.role_mapping_create(actor=ACTOR, role=role, match_kind="identity", identity=ann)
    application = policies.application_create(actor=ACTOR, name="Ops", slug="ops")
    upstream = Route.objects.get(gateway=stage.gateway, path_prefix="/a").upstream_url
    route = policies.route_create(
        actor=ACTOR, gateway=stage.gateway, application=application, host=stage.host, path_prefix="/ops",
        upstream_url=upstream,
    )  # fmt: skip
    policies.access_rule_create(actor=ACTOR, route=route, auth_mode=AuthMode.ROLES, roles=[role])


def test_an_editor_requests_a_deploy_another_admin_approves_it_and_its_page_follows_it_live(
    chromium, live_server, start_celery_worker, tmp_path
):
    with deploy_stage("haproxy", tmp_path / "deploy") as stage:
        _grant_a_new_route(stage)
        start_celery_worker()
        editor = signed_in_page(chromium, live_server, "erin", "editor")
        admin = signed_in_page(chromium, live_server, "adam", "admin")

        editor.goto(f"{live_server.url}/ui/deploy/")
        editor.get_by_role("button", name="Build a snapshot now").click()
        editor.wait_for_url(f"{live_server.url}/ui/deploy/")
        assert editor.get_by_role("button", name="Build a snapshot now").count() == 0
        # ann is new to the gateway: the route of her role, and the one for anyone signed in
        gains = editor.locator(".shift.gain", has_text="ann@acme.test").inner_text()
        assert "1 identity gains access to 2 routes" in gains
        assert "haproxy-edge/app.example.test/ops" in gains and "haproxy-edge/app.example.test/private" in gains
        assert "haproxy-edge/app.example.test/b" in editor.locator(".shift.gain", has_text="Anyone").inner_text()
        editor.get_by_role("button", name="Show the rendered-config diff").click()  # htmx swaps the dry run in
        dry_run = editor.locator(f"#config-diff-{stage.gateway.pk} .config-diff")
        dry_run.wait_for(timeout=DEPLOY_DEADLINE_MS)
        assert "the config is valid" in dry_run.inner_text() and "the proof passed" in dry_run.inner_text()
        assert any("/ops" in line for line in dry_run.locator("pre.diff .add").all_inner_texts())
        editor.get_by_label("Why").fill("ann joins the on-call rota")
        screenshot(editor, "ui-deploy")
        editor.get_by_role("button", name="Request deploy").click()
        editor.wait_for_url(f"{live_server.url}/ui/deploy/requests/*/")
        deploy_request = DeployRequest.objects.get()
        assert editor.get_by_role("button", name="Approve and deploy").count() == 0  # editors do not decide

        admin.goto(f"{live_server.url}/ui/deploy/requests/{deploy_request.pk}/")
        assert "ann joins the on-call rota" in admin.content()
        screenshot(admin, "ui-deploy-request")
        admin.get_by_role("button", name="Approve and deploy").click()
        admin.wait_for_url(f"{live_server.url}/ui/deploy/requests/{deploy_request.pk}/")
        assert "Approved" in admin.locator("h1 + .state").inner_text()
        admin.get_by_role("link", name="to haproxy-edge").click()

        admin.locator("#progress .state.live").wait_for(timeout=DEPLOY_DEADLINE_MS)  # polled in by htmx
        progress = admin.locator("#progress")
        assert progress.get_attribute("hx-trigger") is None  # final: polling stopped
        assert progress.locator(".step.done").count() == 6
        screenshot(admin, "ui-deployment")
        (deployment,) = deploy_request.deployments.all()
        deployment.refresh_from_db()
        assert deployment.state == DeploymentState.LIVE, deployment.messages
        assert stage.answers(deployment) and stage.status("/b/page") == 200

        admin.goto(f"{live_server.url}/ui/deploy/gateways/{stage.gateway.pk}/")
        assert admin.get_by_role("link", name="Roll back to this snapshot").count() == 1  # to the first release's
        screenshot(admin, "ui-deploy-history")
        for page in (editor, admin):
            page.context.close()

"""Signing in to the web UI in a real browser (Chromium) through a real OpenID Connect provider on
loopback: the code flow with PKCE, state and nonce; hub roles from the groups claim; no role, a clear
page; signing out ends the session."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEvent
from tests.support.browser import screenshot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _sign_in(page, live_server, sub: str, path: str = "/ui/") -> None:
    page.goto(f"{live_server.url}{path}")
    page.get_by_role("link", name="Sign in with Acme SSO").click()
    page.fill("input[name=sub]", sub)
    page.get_by_role("button", name="Authorize").click()


def _sign_out(page, live_server) -> str:
    """Sign out of policyhub, then end the session at the provider, back on the sign-in page;
    returns the provider's end-session URL the browser went through."""
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/oauth2/end_session\?"))
    end_session = page.url
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{live_server.url}/login/")
    return end_session


def test_an_auditor_signs_in_with_the_provider_sees_the_dashboard_and_signs_out(provider, browser_page, live_server):
    provider.set_user("alice", email="alice@acme.test", name="Alice Auditor", groups=["staff", "policyhub-auditors"])
    page = browser_page
    page.goto(f"{live_server.url}/ui/")
    assert re.search(r"/login/\?next=/ui/$", page.url)
    screenshot(page, "ui-sign-in")

    _sign_in(page, live_server, "alice")

    page.wait_for_url(f"{live_server.url}/ui/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert page.locator(".role").all_inner_texts() == ["auditor"]
    screenshot(page, "ui-dashboard")
    user = get_user_model().objects.get(username="oidc-alice")
    assert (user.email, user.first_name) == ("alice@acme.test", "Alice Auditor")
    assert provider.pkce.verified == 1  # the token request carried the verifier of the challenge
    changed = AuditEvent.objects.get(action="user.hub_roles_changed", object_id=str(user.pk))
    assert (changed.before, changed.after) == ({"roles": []}, {"roles": ["auditor"]})

    end_session = parse_qs(urlsplit(_sign_out(page, live_server)).query)
    assert end_session["post_logout_redirect_uri"] == [f"{live_server.url}/login/"]
    assert end_session["id_token_hint"][0].count(".") == 2  # the id token the sign-in received
    page.goto(f"{live_server.url}/ui/")
    assert "/login/" in page.url  # the session is gone


def test_someone_in_no_mapped_group_is_signed_in_but_told_which_groups_grant_access(
    provider, browser_page, live_server
):
    provider.set_user("mallory", email="mallory@acme.test", groups=["staff"])

    _sign_in(browser_page, live_server, "mallory")

    browser_page.wait_for_url(f"{live_server.url}/ui/")
    assert browser_page.get_by_role("heading", name="You have no access to policyhub").is_visible()
    assert "policyhub-admins" in browser_page.content()
    screenshot(browser_page, "ui-no-access")


def test_roles_follow_the_groups_at_every_sign_in(provider, browser_page, live_server):
    provider.set_user("bob", email="bob@acme.test", groups=["policyhub-admins"])
    _sign_in(browser_page, live_server, "bob")
    browser_page.wait_for_url(f"{live_server.url}/ui/")
    assert browser_page.locator(".role").all_inner_texts() == ["admin"]
    _sign_out(browser_page, live_server)

    provider.set_user("bob", email="bob@acme.test", groups=["policyhub-editors"])  # moved at the IdP
    _sign_in(browser_page, live_server, "bob")

    browser_page.wait_for_url(f"{live_server.url}/ui/")
    assert browser_page.locator(".role").all_inner_texts() == ["editor"]

"""The web UI's security settings as production runs them: CSP without anything inline, session and
CSRF cookies, CSRF on every form, local password sign-in only where turned on."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor(client):
    user = get_user_model().objects.create_user("auditor", password="correct horse battery staple")
    user.groups.add(Group.objects.get_or_create(name="policyhub-auditor")[0])
    return user


def test_pages_carry_a_content_security_policy_that_allows_nothing_inline_or_foreign(client, auditor):
    client.force_login(auditor)
    policy = client.get("/ui/")["Content-Security-Policy"]
    directives = dict(item.strip().split(" ", 1) for item in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_only_scripts_are_htmx_and_local_time_served_from_this_origin(client, auditor):
    client.force_login(auditor)
    page = client.get("/ui/").content.decode()
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == [
        '<script src="/static/django_htmx/htmx-2.min.js" defer>',
        '<script src="/static/ui/local-time.js" defer>',
    ]


def test_cookies_are_secure_httponly_and_samesite(settings):
    assert settings.SESSION_COOKIE_SECURE and settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.CSRF_COOKIE_SECURE and settings.CSRF_COOKIE_HTTPONLY


def test_signing_out_needs_the_csrf_token(auditor):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(auditor)
    assert browser.post("/oidc/logout/").status_code == 403
    assert browser.get("/ui/").status_code == 200  # still signed in


def test_password_sign_in_is_off_unless_turned_on(client, auditor, settings):
    page = client.get("/login/").content.decode()
    assert 'name="password"' not in page
    assert (
        client.post("/login/", {"username": "auditor", "password": "correct horse battery staple"}).status_code == 405
    )
    assert client.get("/ui/").status_code == 302  # not signed in


def test_password_sign_in_where_turned_on(client, auditor, settings):
    settings.POLICYHUB_LOCAL_LOGIN = True
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "django.contrib.auth.backends.ModelBackend"]
    assert 'name="password"' in client.get("/login/").content.decode()

    answer = client.post(
        "/login/?next=/ui/", {"username": "auditor", "password": "correct horse battery staple", "next": "/ui/"}
    )

    assert (answer.status_code, answer["Location"]) == (302, "/ui/")
    assert client.get("/ui/").status_code == 200


def test_the_admin_signs_in_where_the_ui_does(client):
    answer = client.get("/admin/login/?next=/admin/")
    assert (answer.status_code, answer["Location"]) == (302, "/login/?next=/admin/")

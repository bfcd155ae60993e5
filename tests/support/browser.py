"""A real browser for UI tests: Debian's Chromium driven by Playwright (its own browser download
is not reachable here), headless, with a fresh profile per context, and allowed to reach loopback
only (the mock provider's page links a CDN stylesheet: it is refused, not fetched).

Screenshots go to ``var/screenshots/`` (``screenshot(page, name)``), to be looked at by eye.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture
def chromium_launcher(monkeypatch):
    """``launch(*flags)``: Chromium for one test, with ``flags`` beyond the usual ones (name
    resolution rules, say), closed at the end. Playwright's sync API keeps an event loop running in
    this thread while it lives, which Django takes for an async context, so it lives no longer than
    the test (whose database calls are synchronous all the same)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed; on Debian: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        launched = []

        def launch(*flags: str):
            launched.append(playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*FLAGS, *flags]))
            return launched[-1]

        yield launch
        for browser in launched:
            browser.close()
        # connections the test opened while the loop ran belong to that async context: closed here,
        # or they outlive it and keep the test database from being dropped at the end of the session
        connections.close_all()


@pytest.fixture
def chromium(chromium_launcher):
    return chromium_launcher()


def loopback_page(browser, *, timezone_id: str | None = None, hosts: frozenset[str] = frozenset()):
    """A page in a fresh context (no cookies), which reaches loopback only; close its ``context``.
    ``timezone_id`` (IANA, e.g. "America/New_York"): the zone the page's clock is in; default: the host's.
    ``hosts``: names the browser resolves to loopback too (``--host-resolver-rules``), served with test
    certificates it is told to accept."""
    options = {"timezone_id": timezone_id} if timezone_id else {}
    context = browser.new_context(**options, ignore_https_errors=bool(hosts))
    reachable = LOOPBACK | hosts
    context.route(
        "**/*",
        lambda route: route.continue_() if urlsplit(route.request.url).hostname in reachable else route.abort(),
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def signed_in_page(browser, live_server, name: str, role: str, *, timezone_id: str | None = None):
    """A browser of its own (``loopback_page``) for a new user of hub ``role``, signed in through a
    session made for it; close its ``context``."""
    user = get_user_model().objects.create_user(name, first_name=name.capitalize())
    user.groups.add(Group.objects.get_or_create(name=f"policyhub-{role}")[0])
    client = Client()
    client.force_login(user)
    page = loopback_page(browser, timezone_id=timezone_id)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    return page


@pytest.fixture
def browser_page(chromium) -> Iterator:
    """A page in a fresh context (no cookies), which reaches loopback only."""
    page = loopback_page(chromium)
    yield page
    page.context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

"""Moments in the reader's time zone, in a real browser: the server writes UTC, static/ui/local-time.js
shows it in the browser's zone (here New York's, winter and summer time) once the page has loaded,
and again in a dashboard section htmx has just refreshed by its own polling."""

import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.audit.services import audit_record
from apps.core.actors import Actor
from tests.support.browser import screenshot, signed_in_page

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ACTOR = Actor.system("browser-test")
WINTER = datetime(2025, 1, 15, 17, 5, tzinfo=UTC)  # 12:05 in New York (EST, UTC-5)
SUMMER = datetime(2025, 7, 4, 13, 45, 30, tzinfo=UTC)  # 09:45 in New York (EDT, UTC-4)
AUDIT_POLL_MS = 30_000  # the audit section's hx-trigger="every 30s"


def _recorded_at(moment: datetime, action: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timezone, "now", lambda: moment)
        audit_record(actor=ACTOR, action=action, object_type="policies.role", object_id=1)


def test_times_show_in_the_browsers_zone_on_load_and_after_an_htmx_refresh(chromium, live_server):
    _recorded_at(WINTER, "role.create")
    page = signed_in_page(chromium, live_server, "nina", "auditor", timezone_id="America/New_York")
    page.clock.install()  # the page's timers: its 30-second poll is fast-forwarded, not waited for

    page.goto(f"{live_server.url}/ui/")
    winter = page.locator("#audit time").first

    expect(winter).to_have_text(re.compile(r"^2025-01-15 12:05 (EST|GMT-5)$"))  # the zone's name per locale
    assert winter.get_attribute("title") == "2025-01-15 17:05:00 UTC"  # the server's text, kept for reference
    screenshot(page, "ui-dashboard")

    _recorded_at(SUMMER, "role.update")
    page.clock.fast_forward(AUDIT_POLL_MS + 1_000)  # htmx polls the section and swaps the new one in

    times = page.locator("#audit time")
    # newest first: the new row from the swap is in local time too
    expect(times).to_have_text([re.compile(r"^2025-07-04 09:45 (EDT|GMT-4)$"), re.compile(r"^2025-01-15 12:05 ")])
    page.context.close()

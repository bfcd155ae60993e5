"""``{% timestamp %}``: every moment a page shows is a <time> in UTC with how long ago it was, which
static/ui/local-time.js turns into the reader's zone (tests/ui/test_local_time_browser.py); no
template formats a moment any other way."""

import re
from datetime import UTC, datetime, timedelta
from datetime import timezone as fixed_zone
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.utils import timezone

from apps.audit.services import audit_record
from apps.core.actors import Actor
from apps.ui.templatetags.ui import timestamp
from tests.ui.pages import signed_in

MOMENT = datetime(2025, 1, 15, 12, 30, 45, tzinfo=UTC)
NBSP = "\xa0"  # Django's timesince keeps "5 minutes" on one line


@pytest.fixture
def now_is(monkeypatch):
    def set_now(moment: datetime) -> None:
        monkeypatch.setattr(timezone, "now", lambda: moment)

    return set_now


def _render(source: str, **context) -> str:
    return Template("{% load ui %}" + source).render(Context(context))


def test_a_moment_shows_in_utc_with_how_long_ago(now_is):
    now_is(MOMENT + timedelta(minutes=5))

    assert _render("{% timestamp value %}", value=MOMENT) == (
        '<time datetime="2025-01-15T12:30:45Z" title="2025-01-15 12:30:45 UTC">2025-01-15 12:30 UTC</time>'
        f' <small class="ago">(5{NBSP}minutes ago)</small>'
    )


def test_any_zone_and_iso_text_are_shown_in_utc(now_is):
    now_is(MOMENT + timedelta(days=3, hours=2))
    in_berlin = MOMENT.astimezone(fixed_zone(timedelta(hours=1)))

    shown = _render("{% timestamp value %}", value=in_berlin)

    assert shown == _render("{% timestamp value %}", value="2025-01-15T13:30:45+01:00")  # run messages store text
    assert '<time datetime="2025-01-15T12:30:45Z"' in shown and ">2025-01-15 12:30 UTC</time>" in shown
    assert f"(3{NBSP}days ago)" in shown


def test_seconds_future_moments_just_now_and_no_relative_time(now_is):
    now_is(MOMENT)

    assert timestamp(MOMENT, seconds=True, relative=False) == (
        '<time datetime="2025-01-15T12:30:45Z" title="2025-01-15 12:30:45 UTC" data-seconds>'
        "2025-01-15 12:30:45 UTC</time>"
    )
    assert timestamp(MOMENT - timedelta(seconds=20)).endswith('<small class="ago">(just now)</small>')
    assert timestamp(MOMENT + timedelta(days=2, hours=1)).endswith(f'<small class="ago">(in 2{NBSP}days)</small>')


@pytest.mark.parametrize("nothing", [None, ""])
def test_no_moment_is_a_dash(nothing):
    assert _render("{% timestamp value %}", value=nothing) == "-"


def test_no_ui_template_formats_a_moment_any_other_way():
    templates = sorted((Path(settings.BASE_DIR) / "templates" / "ui").rglob("*.html"))
    assert templates
    for template in templates:
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*(timesince|timeuntil|date|time)\b", text), template
        assert "<time" not in text, template  # only the tag writes <time>


@pytest.mark.django_db
def test_tables_show_moments_through_the_tag(client, now_is):
    now_is(MOMENT)
    audit_record(actor=Actor.system("test"), action="role.create", object_type="policies.role", object_id=1)
    now_is(MOMENT + timedelta(hours=2))
    signed_in(client, "auditor")

    audit_page = client.get("/ui/audit/").content.decode()
    dashboard = client.get("/ui/").content.decode()

    # the audit log to the second, the dashboard to the minute; both say how long ago
    assert timestamp(MOMENT, seconds=True) in audit_page
    assert timestamp(MOMENT) in dashboard and f"(2{NBSP}hours ago)" in dashboard

"""The UI's template tags: ``{% timestamp value %}``, the one way a page shows a moment.

The server writes UTC (the text, and the title for reference) with how long ago it was;
static/ui/local-time.js rewrites the text into the reader's time zone, from the ``datetime``
attribute, on load and after each htmx swap.
"""

from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

register = template.Library()


@register.simple_tag
def timestamp(value: datetime | str | None, *, seconds: bool = False, relative: bool = True) -> SafeString | str:
    """``<time>`` in UTC, then "(N minutes ago)" unless ``relative`` is off; "-" for no value.

    ``value``: an aware datetime, or ISO 8601 text (run messages store their times so). ``seconds``:
    to the second, where events follow each other closely (audit events, deploy messages)."""
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is None:
        return "-"
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)  # naive times here are UTC (USE_TZ stores UTC)
    moment = moment.astimezone(UTC)
    shown = format_html(
        '<time datetime="{}" title="{}"{}>{}</time>',
        moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        format_html(" {}", "data-seconds") if seconds else "",
        moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"),
    )
    if not relative:
        return shown
    now = timezone.now()
    if abs(now - moment) < timedelta(minutes=1):
        ago = "just now"
    elif moment > now:
        ago = f"in {timeuntil(moment, now, depth=1)}"
    else:
        ago = f"{timesince(moment, now, depth=1)} ago"
    return format_html('{} <small class="ago">({})</small>', shown, ago)

"""Helpers for page tests: a signed-in visitor with a hub role, the ETag an edit form carries, and
the cells of a rendered table."""

import html
import re
from html.parser import HTMLParser

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup


def signed_in(client, role: str):
    """Sign ``client`` in as a new user holding the hub ``role``; returns the user."""
    user = get_user_model().objects.create_user(f"{role}-user", email=f"{role}@acme.test")
    user.groups.add(AuthGroup.objects.get_or_create(name=f"policyhub-{role}")[0])
    client.force_login(user)
    return user


def form_etag(page: str) -> str:
    return re.search(r'name="etag" value="([^"]+)"', page)[1].replace("&quot;", '"')


class _Table(HTMLParser):
    """Rows of the first table with ``class_``: each a list of (tag, attributes, text) cells."""

    def __init__(self, class_: str):
        super().__init__()
        self.class_, self.depth, self.rows, self.cell = class_, 0, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and self.class_ in (attrs.get("class") or "").split() and not self.rows:
            self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = (tag, attrs, [])

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[2].append(data)

    def handle_endtag(self, tag):
        if self.depth and tag in ("td", "th") and self.cell is not None:
            tag_, attrs, text = self.cell
            self.rows[-1].append((tag_, attrs, " ".join(" ".join(text).split())))
            self.cell = None
        elif self.depth and tag == "table":
            self.depth = 0


def table_rows(page: str, class_: str) -> list[list[tuple[str, dict, str]]]:
    parser = _Table(class_)
    parser.feed(page)
    return parser.rows


def field_errors(page: str, name: str) -> list[str] | None:
    """The errors an edit form shows on its field ``name`` (None: no such field, or not marked invalid)."""
    for block in page.split('<div class="field')[1:]:
        if f'name="{name}"' in block:
            if not block.startswith(" invalid"):
                return None
            return [html.unescape(error) for error in re.findall(r'<div class="error">(.*?)</div>', block)]
    return None

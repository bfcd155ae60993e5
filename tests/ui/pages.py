"""Helpers for page tests: every page of the UI, a signed-in visitor with a hub role, the ETag an edit
form carries, the cells of a rendered table, a page's empty states and its unlabelled form controls."""

import html
import re
from html.parser import HTMLParser

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as AuthGroup
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from apps.gateways.models import Deployment, DeployRequest
from apps.identities.models import Identity
from apps.policies.models import AccessRule, Application, Gateway, RoleMapping, Route


def ui_pages() -> list[tuple[str, type, bool]]:
    """(url name, view class, whether it takes arguments) of every page under the ``ui`` namespace."""
    _, resolver = get_resolver().namespace_dict["ui"]
    pages = []

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern):
                pages.append((pattern.name, pattern.callback.view_class, bool(pattern.pattern.converters)))

    walk(resolver.url_patterns)
    return pages


# the model of the object a page is about (its ``pk`` argument), by url name
PAGE_MODELS = {
    **dict.fromkeys(["mapping_edit", "mapping_delete"], RoleMapping),
    **dict.fromkeys(
        ["application", "application_edit", "application_delete", "access_matrix", "route_create"], Application
    ),
    **dict.fromkeys(["route", "route_edit", "route_delete", "rule_create"], Route),
    **dict.fromkeys(["rule_edit", "rule_delete"], AccessRule),
    "identity": Identity,
    **dict.fromkeys(
        ["deploy_request", "deploy_request_approve", "deploy_request_reject", "deploy_request_cancel"], DeployRequest
    ),
    **dict.fromkeys(["deploy_gateway", "deploy_config_diff"], Gateway),
    "deployment": Deployment,
}


def every_page_url() -> list[str]:
    """Every page of the UI; a page about one object once for each such object in the database."""
    urls = []
    for name, _, takes_arguments in ui_pages():
        if not takes_arguments:
            urls.append(reverse(f"ui:{name}"))
            continue
        assert name in PAGE_MODELS, f"ui:{name} takes arguments: name the model it shows in PAGE_MODELS"
        pks = list(PAGE_MODELS[name].objects.order_by("pk").values_list("pk", flat=True))
        assert pks, f"ui:{name}: there is no {PAGE_MODELS[name].__name__} to show"
        urls += [reverse(f"ui:{name}", kwargs={"pk": pk}) for pk in pks]
    return urls


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


VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


class _EmptyStates(HTMLParser):
    """The text of each element with the class ``empty``."""

    def __init__(self):
        super().__init__()
        self.texts, self.depth = [], 0

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += tag not in VOID
        elif "empty" in (dict(attrs).get("class") or "").split() and tag not in VOID:
            self.depth = 1
            self.texts.append([])

    def handle_data(self, data):
        if self.depth:
            self.texts[-1].append(data)

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1


def empty_states(page: str) -> list[str]:
    parser = _EmptyStates()
    parser.feed(page)
    return [" ".join("".join(text).split()) for text in parser.texts]


NOT_FILLED_IN = frozenset({"hidden", "submit", "button", "reset", "image"})


class _Controls(HTMLParser):
    """The form controls a person fills in, each with whether a <label> encloses it; the ids labels name."""

    def __init__(self):
        super().__init__()
        self.controls, self.labelled_ids, self.open_labels = [], set(), 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if attrs.get("for"):
                self.labelled_ids.add(attrs["for"])
        elif tag in ("input", "select", "textarea") and "hidden" not in attrs and not self._not_filled_in(tag, attrs):
            self.controls.append((tag, attrs, self.open_labels > 0))

    @staticmethod
    def _not_filled_in(tag: str, attrs: dict) -> bool:
        return tag == "input" and (attrs.get("type") or "text").lower() in NOT_FILLED_IN

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels -= 1


def unlabelled_controls(page: str) -> list[str]:
    """Visible inputs, selects and textareas with no <label> naming their id and none around them."""
    parser = _Controls()
    parser.feed(page)
    return [
        f"<{tag} name={attrs.get('name')!r} id={attrs.get('id')!r}>"
        for tag, attrs, enclosed in parser.controls
        if not enclosed and (not attrs.get("id") or attrs["id"] not in parser.labelled_ids)
    ]

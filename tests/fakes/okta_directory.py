"""The fake Okta's directory: users, groups and memberships, their listing (filters, keyset pages
with ``Link`` headers), one user and its groups, and their JSON, in the shape of the recorded
payloads (``okta_payloads/``).

Compact for the benchmark (100k users, 5k groups, 500k memberships): a user holds its fields and
a cached serialized form, a group's members are a sorted id list, a page is joined bytes.
"""

import json
import time
from bisect import bisect_right, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from threading import RLock
from urllib.parse import urlencode

from tests.fakes.okta_filter import GROUP_FIELDS, USER_FIELDS, FilterError, filter_parse, okta_time_parse
from tests.fakes.okta_replies import Refusal, Reply, okta_error

PAYLOADS = Path(__file__).with_name("okta_payloads")
# The recordings the demo seeds from too: read where the demo keeps them (apps.core.demo.DEMO_DATA;
# importing it would need Django set up, which the benchmark's fake org process does not).
DEMO_RECORDINGS = Path(__file__).resolve().parents[2] / "apps" / "core" / "demo_data" / "okta"


def recording(name: str) -> Path:
    """A recorded Okta payload: the demo's copy when it has one, else the fake's own."""
    shared = DEMO_RECORDINGS / name
    return shared if shared.exists() else PAYLOADS / name


SEED_USERS = (
    "users_page_mixed_statuses.json",
    "users_page_filter_suspended.json",
    "users_page_filter_locked_out.openapi-example.json",
    "users_page2_limit1.json",
    "group_members_page.json",
)
SEED_GROUPS = ("groups_page.json", "groups_page_okta_and_app_group.openapi-example.json")
USER_TYPE_ID = "otynwlw0pkLLUgtNG5d7"  # the recorded users' type


@dataclass(slots=True)
class User:
    id: str
    status: str
    created: int  # epoch seconds: Okta keeps its times to the second
    activated: int | None
    status_changed: int | None
    last_login: int | None
    last_updated: int
    password_changed: int | None
    type_id: str
    profile: dict
    credential_email: str
    provider: str
    raw: bytes | None = None

    def get(self, name: str) -> object:
        if name.startswith("profile."):
            return self.profile.get(name[8:])
        return {"status": self.status, "id": self.id, "lastUpdated": self.last_updated}[name]


@dataclass(slots=True)
class Group:
    id: str
    created: int
    last_updated: int
    last_membership_updated: int
    object_class: list
    type: str
    profile: dict
    source_id: str | None
    members: list[str] = field(default_factory=list)  # sorted user ids
    raw: bytes | None = None

    def get(self, name: str) -> object:
        return {
            "id": self.id,
            "type": self.type,
            "lastUpdated": self.last_updated,
            "lastMembershipUpdated": self.last_membership_updated,
        }[name]


class Directory:
    """Mixed into ``FakeOkta``, which provides ``clock``, ``link_base``, ``url`` and ``_lock``."""

    clock: Callable[[], float]
    url: str
    link_base: str
    page_size: int | None
    duplicate_across_pages: bool
    _lock: RLock

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._user_ids: list[str] = []
        self._groups: dict[str, Group] = {}
        self._group_ids: list[str] = []
        self._sequence = 0

    def seed_from_payloads(self) -> None:
        """The recorded users and groups; the recorded member in Group-Target-Test (by name, as the
        members page was recorded in another run); every seeded user in Everyone."""
        for name in SEED_USERS:
            for user in json.loads(recording(name).read_text()):
                self.add_recorded_user(user)
        for name in SEED_GROUPS:
            for group in json.loads(recording(name).read_text()):
                self.add_recorded_group(group)
        members = [user["id"] for user in json.loads(recording("group_members_page.json").read_text())]
        self.add_members(self.group_id("Group-Target-Test"), members, touch=False)
        self.add_members(self.group_id("Everyone"), list(self._users), touch=False)

    def add_recorded_user(self, payload: dict) -> None:
        """A user object as Okta answered it (a recording); the first of an id wins."""
        with self._lock:
            if payload["id"] not in self._users:
                self._store_user(_user_from_payload(payload))

    def add_recorded_group(self, payload: dict) -> None:
        with self._lock:
            self._store_group(_group_from_payload(payload))

    def add_user(
        self, *, login: str | None = None, status: str = "ACTIVE", profile: dict | None = None, everyone: bool = True
    ) -> str:
        return self.add_users(1, status=status, login=login, profile=profile, everyone=everyone)[0]

    def add_users(
        self,
        count: int,
        *,
        status: str = "ACTIVE",
        login: str | None = None,
        profile: dict | None = None,
        everyone: bool = True,
    ) -> list[str]:
        """``count`` users in the recorded users' shape (``login`` may hold ``{n}``); like Okta, each
        joins Everyone unless ``everyone`` is False."""
        with self._lock:
            now = int(self.clock())
            ids = []
            for _ in range(count):
                self._sequence += 1
                number = self._sequence
                user_login = (login or "user{n}@example.com").format(n=number)
                base = {"firstName": "User", "lastName": f"Number-{number}", "mobilePhone": None, "secondEmail": None}
                user_profile = {**base, "login": user_login, "email": user_login, **(profile or {})}
                user = User(
                    id=f"00u{number:015d}x6",
                    status=status,
                    created=now,
                    activated=None if status == "STAGED" else now,
                    status_changed=None if status == "STAGED" else now,
                    last_login=None,
                    last_updated=now,
                    password_changed=now,
                    type_id=USER_TYPE_ID,
                    profile=user_profile,
                    credential_email=user_profile["email"],
                    provider="OKTA",
                )
                self._users[user.id] = user
                ids.append(user.id)
            self._user_ids = sorted(self._users)
            everyone_ids = [group.id for group in self._groups.values() if group.profile.get("name") == "Everyone"]
            if everyone and everyone_ids:
                self.add_members(everyone_ids[0], ids)
            return ids

    def set_status(self, user_id: str, status: str) -> None:
        with self._lock:
            user = self._users[user_id]
            user.status, user.status_changed = status, int(self.clock())
            user.last_updated, user.raw = user.status_changed, None

    def update_profile(self, user_id: str, **changes) -> None:
        """An admin edits the user's profile: ``lastUpdated`` moves."""
        with self._lock:
            user = self._users[user_id]
            user.profile = {**user.profile, **changes}
            user.last_updated, user.raw = int(self.clock()), None

    def delete_user(self, user_id: str) -> None:
        """Deleted outright (after deprovisioning): gone from every listing, filtered or not."""
        with self._lock:
            del self._users[user_id]
            self._user_ids.remove(user_id)
            for group in self._groups.values():
                if user_id in group.members:
                    group.members.remove(user_id)

    def add_group(
        self, name: str, *, description: str | None = None, members: Iterable[str] = (), id: str | None = None
    ) -> str:
        with self._lock:
            self._sequence += 1
            now = int(self.clock())
            group = Group(
                id=id or f"00g{self._sequence:015d}x6",
                created=now,
                last_updated=now,
                last_membership_updated=now,
                object_class=["okta:user_group"],
                type="OKTA_GROUP",
                profile={"name": name, "description": description},
                source_id=None,
            )
            self._store_group(group)
            self.add_members(group.id, list(members), touch=False)
            return group.id

    def add_members(self, group_id: str, user_ids: list[str], *, touch: bool = True) -> None:
        with self._lock:
            group = self._groups[group_id]
            group.members = sorted(set(group.members).union(user_ids))
            if touch:
                group.last_membership_updated, group.raw = int(self.clock()), None

    def move_member(self, user_id: str, source_group: str, target_group: str) -> None:
        with self._lock:
            group = self._groups[source_group]
            group.members.remove(user_id)
            group.last_membership_updated, group.raw = int(self.clock()), None
            self.add_members(target_group, [user_id])

    def delete_group(self, group_id: str) -> None:
        with self._lock:
            del self._groups[group_id]
            self._group_ids.remove(group_id)

    def group_id(self, name: str) -> str:
        return next(group.id for group in self._groups.values() if group.profile.get("name") == name)

    def user_ids(self) -> set[str]:
        return set(self._users)

    def group_ids(self) -> list[str]:
        return list(self._group_ids)

    def members(self, group_id: str) -> list[str]:
        return list(self._groups[group_id].members)

    # ---- listing
    def list_users(self, path: str, query: dict) -> Reply:
        if "search" in query or "q" in query:
            return okta_error(400, "E0000031", "Invalid search criteria.")  # the fake knows filter only
        predicate = _parse(query.get("filter"), USER_FIELDS)
        # as Okta: a plain listing leaves DEPROVISIONED users out, a filtered one does not
        keep = (
            (lambda user: user.status != "DEPROVISIONED") if predicate is None else (lambda user: predicate(user.get))
        )
        page = self._page(self._user_ids, self._users, keep, query, default=200, maximum=200)
        return self._list_reply(path, query, page, self._user_json)

    def list_groups(self, path: str, query: dict) -> Reply:
        predicate = _parse(query.get("filter"), GROUP_FIELDS)
        keep = (lambda group: True) if predicate is None else (lambda group: predicate(group.get))
        page = self._page(self._group_ids, self._groups, keep, query, default=10000, maximum=10000)
        return self._list_reply(path, query, page, self._group_json)

    def list_members(self, path: str, group_id: str, query: dict) -> Reply:
        group = self._groups.get(group_id)
        if group is None:
            return okta_error(404, "E0000007", f"Not found: Resource not found: {group_id} (UserGroup)")
        page = self._page(group.members, self._users, lambda user: True, query, default=1000, maximum=1000)
        return self._list_reply(path, query, page, self._user_json)

    def get_user(self, user_id: str) -> Reply:
        """``GET /api/v1/users/{id}``: any status (DEPROVISIONED too); 404 once deleted, as recorded."""
        user = self._users.get(user_id)
        if user is None:
            return okta_error(404, "E0000007", f"Not found: Resource not found: {user_id} (User)")
        return Reply(200, self._user_json(user))

    def list_user_groups(self, path: str, user_id: str, query: dict) -> Reply:
        """``GET /api/v1/users/{id}/groups``: the groups listing its member, paged like ``/groups``."""
        if user_id not in self._users:
            return okta_error(404, "E0000007", f"Not found: Resource not found: {user_id} (User)")
        holds = lambda group: _holds(group.members, user_id)  # noqa: E731
        page = self._page(self._group_ids, self._groups, holds, query, default=10000, maximum=10000)
        return self._list_reply(path, query, page, self._group_json)

    def _page(self, ids: list[str], objects: dict, keep, query: dict, *, default: int, maximum: int):
        """The page after the cursor (keyset on id), the next cursor when more may follow, the limit."""
        try:
            limit = min(int(query.get("limit", default)), maximum, self.page_size or maximum)
        except ValueError:
            raise Refusal(okta_error(400, "E0000001", "Api validation failed: limit")) from None
        after = query.get("after")
        if after is not None and not (after.startswith("0") and len(after) > 1):
            raise Refusal(okta_error(400, "E0000001", "Api validation failed: after"))
        position = bisect_right(ids, after[1:]) if after else 0
        page: list = []
        while position < len(ids) and len(page) < limit:
            item = objects.get(ids[position])
            if item is not None and keep(item):
                page.append(item)
            position += 1
        if len(page) < limit or position >= len(ids):
            return page, None, limit
        last = page[-2] if self.duplicate_across_pages and len(page) > 1 else page[-1]  # the last one comes again
        return page, "0" + last.id, limit  # Okta's cursors are the last id with a leading 0

    def _list_reply(self, path: str, query: dict, page, render) -> Reply:
        items, cursor, limit = page
        reply = Reply(200, b"[" + b",".join(render(item) for item in items) + b"]")
        self_query = urlencode(query)
        reply.headers.append(("Link", f'<{self.link_base}{path}{"?" if self_query else ""}{self_query}>; rel="self"'))
        if cursor is not None:
            rest = {key: value for key, value in query.items() if key not in {"after", "limit"}}
            next_query = urlencode({"after": cursor, "limit": limit, **rest})
            reply.headers.append(("Link", f'<{self.link_base}{path}?{next_query}>; rel="next"'))
        return reply

    # ---- JSON in the recorded shape
    def _user_json(self, user: User) -> bytes:
        if user.raw is None:
            user.raw = json.dumps(
                {
                    "id": user.id,
                    "status": user.status,
                    "created": _iso(user.created),
                    "activated": _iso(user.activated),
                    "statusChanged": _iso(user.status_changed),
                    "lastLogin": _iso(user.last_login),
                    "lastUpdated": _iso(user.last_updated),
                    "passwordChanged": _iso(user.password_changed),
                    "type": {"id": user.type_id},
                    "profile": user.profile,
                    "credentials": {
                        "password": {},
                        "emails": [{"value": user.credential_email, "status": "VERIFIED", "type": "PRIMARY"}],
                        "provider": {"type": user.provider, "name": user.provider},
                    },
                    "_links": {"self": {"href": f"{self.url}/api/v1/users/{user.id}"}},
                },
                separators=(",", ":"),
            ).encode()
        return user.raw

    def _group_json(self, group: Group) -> bytes:
        if group.raw is None:
            kind = "active_directory" if group.type == "APP_GROUP" else "okta"
            links: dict = {
                "logo": [
                    {"name": size, "href": f"{self.url}/img/logos/groups/{kind}-{size}.png", "type": "image/png"}
                    for size in ("medium", "large")
                ]
            }
            document = {
                "id": group.id,
                "created": _iso(group.created),
                "lastUpdated": _iso(group.last_updated),
                "lastMembershipUpdated": _iso(group.last_membership_updated),
                "objectClass": group.object_class,
                "type": group.type,
                "profile": group.profile,
            }
            if group.source_id:
                document["source"] = {"id": group.source_id}
                links["source"] = {"href": f"{self.url}/api/v1/apps/{group.source_id}"}
            links["users"] = {"href": f"{self.url}/api/v1/groups/{group.id}/users"}
            links["apps"] = {"href": f"{self.url}/api/v1/groups/{group.id}/apps"}
            document["_links"] = links
            group.raw = json.dumps(document, separators=(",", ":")).encode()
        return group.raw

    def _store_user(self, user: User) -> None:
        self._users[user.id] = user
        insort(self._user_ids, user.id)

    def _store_group(self, group: Group) -> None:
        self._groups[group.id] = group
        insort(self._group_ids, group.id)


def _parse(text: str | None, fields: dict):
    if text is None:
        return None
    try:
        return filter_parse(text, fields)
    except FilterError as error:
        raise Refusal(okta_error(400, "E0000031", f"Invalid search criteria: {error}")) from None


def _holds(sorted_ids: list[str], wanted: str) -> bool:
    position = bisect_right(sorted_ids, wanted)
    return position > 0 and sorted_ids[position - 1] == wanted


def _iso(seconds: int | None) -> str | None:
    return None if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def _seconds(value: str | None) -> int | None:
    return None if value is None else int(okta_time_parse(value))


def _user_from_payload(user: dict) -> User:
    credentials = user.get("credentials") or {}
    emails = credentials.get("emails") or [{"value": user["profile"].get("email")}]
    return User(
        id=user["id"],
        status=user["status"],
        created=_seconds(user["created"]) or 0,
        activated=_seconds(user.get("activated")),
        status_changed=_seconds(user.get("statusChanged")),
        last_login=_seconds(user.get("lastLogin")),
        last_updated=_seconds(user["lastUpdated"]) or 0,
        password_changed=_seconds(user.get("passwordChanged")),
        type_id=user["type"]["id"],
        profile=dict(user["profile"]),
        credential_email=emails[0]["value"],
        provider=(credentials.get("provider") or {}).get("type", "OKTA"),
    )


def _group_from_payload(group: dict) -> Group:
    return Group(
        id=group["id"],
        created=_seconds(group["created"]) or 0,
        last_updated=_seconds(group["lastUpdated"]) or 0,
        last_membership_updated=_seconds(group["lastMembershipUpdated"]) or 0,
        object_class=list(group["objectClass"]),
        type=group["type"],
        profile=dict(group["profile"]),
        source_id=(group.get("source") or {}).get("id"),
    )

"""A fake JetBrains Space organization: a real HTTP/1.1 server on 127.0.0.1 speaking the team-directory
API the Space connector reads, with switches for the faults a real organization produces.

Shapes follow the Space SDK DTOs and the recorded payloads (``shared/reference/integrations.md``
section 1; ``apps/core/demo_data/space/``): ``Batch`` answers ``{next, totalCount, data}`` with an
opaque string ``$skip`` and ``next`` still set on the last page (then an empty page), ``$fields``
(nested, ``*``; an object not listed comes back with its scalar fields only), dates as
``{"iso", "timestamp"}``, errors as ``{error, error_description}``, ``/oauth/token`` with HTTP Basic
client authentication, Bearer tokens that expire. Assumptions, where Space published nothing: which
profiles count as past members (archived, or ``left`` on or before today), the wording of error
descriptions other than ``Access token has expired``, and which permission guards which endpoint.
"""

import base64
import json
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from apps.core.demo import DEMO_DATA

TOKEN_EXPIRED = "Access token has expired"
PERMISSIONS = ("Profile.View", "Profile.Memberships.View", "Team.View")
_ALPHABET = string.ascii_letters + string.digits


def space_id() -> str:
    """An id in Space's shape (12 letters and digits, as ``2asfen24Jx6u``)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def space_date(day: date) -> dict:
    return {
        "iso": day.isoformat(),
        "timestamp": int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000),
    }


def today_plus(days: int) -> date:
    return datetime.now(UTC).date() + timedelta(days=days)


@dataclass
class Seen:
    """One request the fake answered, as the connector sent it (never the credential itself)."""

    method: str
    path: str
    query: dict[str, list[str]]
    auth: str  # "basic", "token #<n>" (the n-th issued), "permanent", "" (none or unknown)
    status: int = 0
    ids: list[str] = field(default_factory=list)  # the ids in a Batch answer's data


@dataclass
class _Fault:
    kind: str  # "rate-limit", "fail", "malform", "drop"
    prefix: str
    status: int = 0
    retry_after: str | None = None


class FakeSpace:
    """Use as a context manager; ``url`` is the organization URL (API at ``url/api/http/``)."""

    def __init__(
        self,
        *,
        client_id: str = "policyhub-importer",
        client_secret: str | None = None,
        permanent_token: str | None = None,
        token_lifetime: int = 600,
        clock: Callable[[], float] = time.monotonic,
        port: int = 0,
    ):
        self.port = port  # 0: any free one
        self.client_id = client_id
        self.client_secret = client_secret or "cs-" + secrets.token_urlsafe(24)
        self.permanent_token = permanent_token or "pt-" + secrets.token_urlsafe(32)
        self.token_lifetime, self.clock = token_lifetime, clock
        self.profiles: dict[str, dict] = {}  # id -> the full profile, without memberships; in listing order
        self.guests: set[str] = set()
        self.teams: dict[str, dict] = {}
        self.roles: dict[str, dict] = {}
        self.memberships: list[dict] = []
        self.permissions = set(PERMISSIONS)
        self.echo_credentials = False  # error descriptions quote the request's Authorization (a careless proxy)
        self.seen: list[Seen] = []
        self.token_grants = 0
        self.rate_limited = 0  # 429s sent
        self.expired_rejections = 0  # 401 "Access token has expired" sent
        self._tokens: dict[str, tuple[int, float]] = {}  # access token -> (grant number, expires at)
        self._permanent_expired = False
        self._faults: list[_Fault] = []
        self._hooks: list[list] = []  # [path prefix, requests left before it fires, action]
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # lifecycle

    def __enter__(self) -> "FakeSpace":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def client_credentials(self) -> str:
        return json.dumps({"client_id": self.client_id, "client_secret": self.client_secret})

    def token_credential(self) -> str:
        return json.dumps({"token": self.permanent_token})

    # the organization

    def add_profile(
        self,
        username: str,
        *,
        first: str = "",
        last: str = "",
        email: str | None = "",
        id: str | None = None,
        guest: bool = False,
        at_start: bool = False,
        **fields,
    ) -> str:
        """A profile with every field the SDK's TD_MemberProfile requires; ``fields`` override
        (``archived``, ``notAMember``, ``suspended``, ``accessSuspended``, ``left`` (a date), ``about``…)."""
        profile_id = id or space_id()
        email = f"{username.lower()}@example.com" if email == "" else email
        profile = {
            "id": profile_id, "username": username, "name": {"firstName": first or username, "lastName": last},
            "speaksEnglish": True, "languages": [], "archived": False, "notAMember": False, "suspended": False,
            "accessSuspended": False, "joined": space_date(date(2021, 6, 15)), "external": False,
            "externalLight": False, "absences": [], "customFields": {},
            "emails": [{"id": space_id(), "email": email, "blocked": False, "verified": True}] if email else [],
            "links": [], "locationHistory": [], "locations": [], "logins": [], "managers": [],
            "membershipHistory": [], "messengers": [], "onboardingRequired": False, "phones": [], "topics": [],
        }  # fmt: skip
        for key, value in fields.items():
            profile[key] = space_date(value) if isinstance(value, date) else value
        with self._lock:
            self.profiles = (
                {profile_id: profile, **self.profiles} if at_start else {**self.profiles, profile_id: profile}
            )
            if guest:
                self.guests.add(profile_id)
        return profile_id

    def add_profiles(self, count: int, *, prefix: str = "member") -> list[str]:
        return [self.add_profile(f"{prefix}.{n:04d}", first=prefix.title(), last=f"No. {n}") for n in range(count)]

    def add_team(self, name: str, *, parent: str | None = None, description: str = "", **fields) -> str:
        team_id = fields.pop("id", None) or space_id()
        team = {"id": team_id, "name": name, "description": description, "parent": {"id": parent} if parent else None,
                "emails": [], "archived": False, "disbanded": False, "customFields": {}, **fields}  # fmt: skip
        with self._lock:
            self.teams[team_id] = team
        return team_id

    def add_role(self, name: str, *, archived: bool = False) -> str:
        role_id = space_id()
        with self._lock:
            self.roles[role_id] = {"id": role_id, "name": name, "parent": None, "archived": archived}
        return role_id

    def add_membership(self, profile: str, team: str, *, role: str | None = None, lead: bool = False, **fields) -> str:
        membership = {
            "id": space_id(), "member": profile, "team": team, "role": role, "lead": lead, "archived": False,
            "requiresApproval": False, "since": space_date(date(2022, 1, 3)), **fields,
        }  # fmt: skip
        with self._lock:
            self.memberships.append(membership)
        return membership["id"]

    def move_member(self, profile: str, *, source: str, target: str) -> None:
        with self._lock:
            for membership in self.memberships:
                if membership["member"] == profile and membership["team"] == source and not membership["archived"]:
                    membership["team"] = target

    def delete_team(self, team: str) -> None:
        with self._lock:
            del self.teams[team]
            self.memberships = [m for m in self.memberships if m["team"] != team]

    def seed_from_recordings(self) -> dict[str, str]:
        """The people the recorded payloads name (username -> id): John.Doe from the team-directory
        example (with its ``about``), the principals of the two webhook payloads."""
        doc = json.loads((DEMO_DATA / "space/profile_fields_id_about.docs.json").read_text())
        people = {"John.Doe": self.add_profile("John.Doe", first="John", last="Doe", id=doc["id"], about=doc["about"])}
        for name in ("webhook_code_review_participant_event.json", "webhook_profile_organization_event.docs.json"):
            principal = json.loads((DEMO_DATA / "space" / name).read_text())["payload"]["meta"]["principal"]
            people[principal["name"]] = self.add_profile(principal["name"], id=principal["details"]["user"]["id"])
        return people

    # faults

    def rate_limit(self, count: int = 1, *, retry_after: str | None = None, prefix: str = "/api/http/") -> None:
        """The next ``count`` matching requests get 429 ``rate-limited`` (with ``Retry-After`` if given)."""
        self._queue(count, _Fault("rate-limit", prefix, 429, retry_after))

    def fail(self, count: int = 1, *, status: int = 500, prefix: str = "/api/http/") -> None:
        """5xx: 500 with Space's ``internal-server-error``, other codes with a proxy's HTML page."""
        self._queue(count, _Fault("fail", prefix, status))

    def malform(self, count: int = 1, *, prefix: str = "/api/http/") -> None:
        """The next ``count`` answers are 200 with their JSON cut in half."""
        self._queue(count, _Fault("malform", prefix))

    def drop(self, count: int = 1, *, prefix: str = "/api/http/") -> None:
        """The next ``count`` requests get their connection closed without an answer."""
        self._queue(count, _Fault("drop", prefix))

    def expire_tokens(self) -> None:
        """Every token issued so far, and the permanent token, has expired as of now."""
        with self._lock:
            self._tokens = {token: (grant, -1.0) for token, (grant, _) in self._tokens.items()}
            self._permanent_expired = True

    def when(self, prefix: str, action: Callable[[], None], *, after: int = 1) -> None:
        """Run ``action`` once, right after the ``after``-th answered request under ``prefix``."""
        with self._lock:
            self._hooks.append([prefix, after, action])

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def requests_to(self, prefix: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path.startswith(prefix)]

    def _queue(self, count: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    # serving (under the lock: one request at a time sees and changes the organization)

    def handle(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict, bytes] | None:
        url = urlsplit(target)
        path, query = unquote(url.path), parse_qs(url.query, keep_blank_values=True)
        with self._lock:
            seen = Seen(method, path, query, self._auth_kind(headers.get("Authorization", "")))
            self.seen.append(seen)
            fault = next((f for f in self._faults if path.startswith(f.prefix)), None)
            if fault is not None:
                self._faults.remove(fault)
            if fault is not None and fault.kind == "drop":
                return None
            if fault is not None and fault.kind in ("rate-limit", "fail"):
                seen.status, answer = self._fault_answer(fault)
                return seen.status, *answer
            status, payload = self._route(method, path, query, headers, body, seen)
            seen.status = status
            if status >= 400 and self.echo_credentials:
                payload["error_description"] += f" (Authorization: {headers.get('Authorization', '')})"
            for hook in list(self._hooks):
                if path.startswith(hook[0]):
                    hook[1] -= 1
                    if hook[1] == 0:
                        self._hooks.remove(hook)
                        hook[2]()
        data = _json(payload)
        if fault is not None and fault.kind == "malform":
            return 200, {"Content-Type": "application/json"}, data[: len(data) // 2]
        return status, {"Content-Type": "application/json"}, data

    def _fault_answer(self, fault: _Fault) -> tuple[int, tuple[dict, bytes]]:
        if fault.kind == "rate-limit":
            self.rate_limited += 1
            headers = {"Content-Type": "application/json"} | (
                {"Retry-After": fault.retry_after} if fault.retry_after else {}
            )
            return 429, (headers, _json(_error("rate-limited", "Too many requests")[1]))
        if fault.status == 500:
            return 500, (
                {"Content-Type": "application/json"},
                _json(_error("internal-server-error", "Server error")[1]),
            )
        # a 502/503/504 comes from whatever proxy sits in front of Space: an HTML page
        return fault.status, ({"Content-Type": "text/html"}, f"<html><h1>{fault.status}</h1></html>".encode())

    def _auth_kind(self, authorization: str) -> str:
        scheme, _, value = authorization.partition(" ")
        if scheme == "Basic":
            return "basic"
        if scheme == "Bearer" and value == self.permanent_token:
            return "permanent"
        if scheme == "Bearer" and value in self._tokens:
            return f"token #{self._tokens[value][0]}"
        return ""

    def _route(self, method, path, query, headers, body, seen) -> tuple[int, object]:
        if path == "/oauth/token":
            return self._token(method, headers, body) if method == "POST" else _error("not-found", "Not found", 404)
        if not path.startswith("/api/http/"):
            return _error("not-found", "Not found", 404)
        denied = self._authenticate(headers.get("Authorization", ""))
        if denied:
            return denied
        if method != "GET":
            return _error("request-error", f"{method} is not served by this fake", 400)
        try:
            fields = _parse_fields(query.get("$fields", [""])[-1])
        except ValueError as error:
            return _error("validation-error", str(error), 400)
        parts = path.removeprefix("/api/http/").strip("/").split("/")
        return self._api(parts, query, fields, seen)

    def _token(self, method, headers, body) -> tuple[int, object]:
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        try:
            client_id, _, client_secret = base64.b64decode(value).decode().partition(":")
        except ValueError:
            client_id = client_secret = ""
        if scheme != "Basic" or (client_id, client_secret) != (self.client_id, self.client_secret):
            return _error("authentication-required", "Client authentication failed", 401)
        form = parse_qs(body.decode())
        if form.get("grant_type") != ["client_credentials"] or not form.get("scope"):
            return _error("validation-error", "grant_type=client_credentials and scope are required", 400)
        token = "at-" + secrets.token_urlsafe(32)
        self.token_grants += 1
        self._tokens[token] = (self.token_grants, self.clock() + self.token_lifetime)
        return 200, {"token_type": "Bearer", "access_token": token, "expires_in": self.token_lifetime}

    def _authenticate(self, authorization: str) -> tuple[int, object] | None:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return _error("authentication-required", "Authentication required", 401)
        if token == self.permanent_token:
            expired = self._permanent_expired
        elif token in self._tokens:
            expired = self.clock() >= self._tokens[token][1]
        else:
            return _error("authentication-required", "Invalid access token", 401)
        if expired:
            self.expired_rejections += 1
            return _error("authentication-required", TOKEN_EXPIRED, 401)
        return None

    def _api(self, parts: list[str], query, fields, seen: Seen) -> tuple[int, object]:
        archived_too = _flag(query, "withArchived", False)
        match parts:
            case ["team-directory", "profiles"]:
                return self._guarded("Profile.View") or self._batch(self._listed_profiles(query), query, fields, seen)
            case ["team-directory", "profiles", identifier]:
                return self._guarded("Profile.View") or self._one_profile(identifier, fields)
            case ["team-directory", "teams"]:
                teams = [t for t in self.teams.values() if archived_too or not (t["archived"] or t["disbanded"])]
                return self._guarded("Team.View") or self._batch(teams, query, fields, seen)
            case ["team-directory", "teams", team_id, "direct-members"]:
                if team_id not in self.teams:
                    return _error("not-found", f"Team {team_id} not found", 404)
                members = [self._profile(p) for p in self._member_ids(team_id)]
                return self._guarded("Team.View") or self._batch(members, query, fields, seen)
            case ["team-directory", "roles"]:  # a plain array, not a Batch
                roles = [r for r in self.roles.values() if archived_too or not r["archived"]]
                return self._guarded("Team.View") or (200, _select(roles, fields))
            case ["team-directory", "memberships"]:
                found = [
                    self._membership(m) for m in self.memberships if self._membership_matches(m, query, archived_too)
                ]
                return self._guarded("Profile.Memberships.View") or self._batch(found, query, fields, seen)
        return _error("not-found", "Not found", 404)

    def _membership_matches(self, membership: dict, query, archived_too: bool) -> bool:
        if membership["archived"] and not archived_too:
            return False
        for param, key in (("profiles", "member"), ("teams", "team"), ("roles", "role")):
            wanted = set(_list_param(query, param))
            if wanted and membership[key] not in wanted:
                return False
        return True

    def _guarded(self, permission: str) -> tuple[int, object] | None:
        return (
            None
            if permission in self.permissions
            else _error("permission-denied", f"Permission denied: {permission}", 403)
        )

    def _batch(self, items: list[dict], query, fields, seen: Seen) -> tuple[int, object]:
        skip, top = query.get("$skip", ["0"])[-1], query.get("$top", ["100"])[-1]
        if not (skip.isdigit() and top.isdigit()):
            return _error("validation-error", "$skip and $top must be non-negative numbers", 400)
        start = int(skip)
        page = items[start : start + int(top)]
        seen.ids = [item["id"] for item in page]
        # like Space: `next` stays set on the last page; the page after it comes back empty
        return 200, _select({"next": str(start + len(page)), "totalCount": len(items), "data": page}, fields)

    def _listed_profiles(self, query) -> list[dict]:
        relation = query.get("orgRelation", ["MEMBER"])[-1]
        team = query.get("teamId", [None])[-1]
        text = query.get("query", [""])[-1].lower()
        listed = []
        for profile_id in self.profiles:
            guest = profile_id in self.guests
            if (relation == "MEMBER" and guest) or (relation == "GUEST" and not guest):
                continue
            if team is not None and profile_id not in self._member_ids(team):
                continue
            profile = self._profile(profile_id)
            if text and text not in json.dumps([profile["username"], profile["name"], profile["emails"]]).lower():
                continue
            period = _period(profile)
            report = {"past": "reportPastMembers", "future": "reportFutureMembers"}.get(period, "reportCurrentMembers")
            if _flag(query, report, period == "current"):
                listed.append(profile)
        return listed

    def _one_profile(self, identifier: str, fields) -> tuple[int, object]:
        kind, _, value = identifier.rpartition(":")
        for profile_id, profile in self.profiles.items():
            if (kind in ("", "id") and profile_id == value) or (kind == "username" and profile["username"] == value):
                return 200, _select(self._profile(profile_id), fields)
        return _error("not-found", f"Profile {identifier} not found", 404)

    def _member_ids(self, team_id: str) -> list[str]:
        ids = [m["member"] for m in self.memberships if m["team"] == team_id and not m["archived"]]
        return [profile_id for profile_id in dict.fromkeys(ids) if profile_id in self.profiles]

    def _profile(self, profile_id: str) -> dict:
        own = [m for m in self.memberships if m["member"] == profile_id]
        return {**self.profiles[profile_id], "memberships": [self._membership(m) for m in own if not m["archived"]],
                "membershipHistory": [self._membership(m) for m in own if m["archived"]]}  # fmt: skip

    def _membership(self, membership: dict) -> dict:
        profile = self.profiles.get(membership["member"], {"id": membership["member"]})
        return {**membership, "member": {k: v for k, v in profile.items() if k in ("id", "username", "name")},
                "team": self.teams.get(membership["team"], {"id": membership["team"]}),
                "role": self.roles.get(membership["role"]) if membership["role"] else None}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx uses it
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait per request
    fake: FakeSpace

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.fake.handle(self.command, self.path, self.headers, body)
        if answer is None:
            self.close_connection = True
            return
        status, headers, data = answer
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True


_STATUSES = {"authentication-required": 401, "permission-denied": 403, "not-found": 404, "rate-limited": 429,
             "internal-server-error": 500}  # fmt: skip


def _error(code: str, description: str, status: int | None = None) -> tuple[int, dict]:
    return status or _STATUSES.get(code, 400), {"error": code, "error_description": description}


def _json(payload) -> bytes:
    return json.dumps(payload).encode()


def _flag(query, name: str, default: bool) -> bool:
    return query.get(name, [str(default).lower()])[-1] == "true"


def _period(profile: dict) -> str:
    today = datetime.now(UTC).date()
    left, joined = profile.get("left"), profile.get("joined")
    if profile["archived"] or (left and date.fromisoformat(left["iso"]) <= today):
        return "past"
    if joined and date.fromisoformat(joined["iso"]) > today:
        return "future"
    return "current"


def _list_param(query, key: str) -> Iterator[str]:
    for value in query.get(key, []):
        yield from (part for part in value.split(",") if part)


def _parse_fields(text: str) -> dict | None:
    """``a,b(c,d(e)),*`` -> ``{"a": None, "b": {"c": None, "d": {"e": None}}, "*": None}``; None if empty."""
    if not text:
        return None
    position = 0

    def level() -> dict:
        nonlocal position
        names: dict = {}
        while position < len(text):
            end = position
            while end < len(text) and text[end] not in ",()":
                end += 1
            name = text[position:end].strip()
            if not name:
                raise ValueError(f"$fields: a name is missing at {end}")
            position = end
            names[name] = None
            if position < len(text) and text[position] == "(":
                position += 1
                names[name] = level()
                if position >= len(text) or text[position] != ")":
                    raise ValueError("$fields: unbalanced parentheses")
                position += 1
            if position < len(text) and text[position] == ",":
                position += 1
                continue
            break
        return names

    tree = level()
    if position != len(text):
        raise ValueError("$fields: unbalanced parentheses")
    return tree


def _select(value, tree: dict | None, *, top: bool = True):
    """Apply ``$fields``. Without it, every field at the top; an object not listed: its scalars only."""
    if isinstance(value, list):
        return [_select(item, tree, top=top) for item in value]
    if not isinstance(value, dict):
        return value
    if tree is None and not top:
        return {name: item for name, item in value.items() if not isinstance(item, dict | list)}
    tree = tree or {"*": None}
    names = list(value) if "*" in tree else [name for name in tree if name in value]
    return {name: _select(value[name], tree.get(name), top=False) for name in names}

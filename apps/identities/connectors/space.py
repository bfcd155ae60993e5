"""JetBrains Space: an organization's member profiles, teams and team memberships, read through its
HTTP API (``<org>/api/http/``) with an application's client credentials or a permanent token.

Vendor facts are in ``shared/reference/integrations.md`` section 1; the choices made here:

- **Always a full fetch** (``incremental = False``, ``Fetch.complete`` True). Space's incremental
  ``sync-batch`` API covers teams and memberships but not profiles, so deactivations would still need
  the full profile list; it is keyed by an opaque etag that ``fetch(since=<datetime>)`` cannot carry;
  and the base contract wants *all* members after each group anyway. A full read of a 1,000-person
  organization takes 11 profile requests plus two per team (a page, and the empty page that ends it).
- **Past members are read** (``reportPastMembers=true``) so that people who left come back as
  inactive, with the reason, rather than only vanishing. ``archived``, ``notAMember``, ``suspended``,
  ``accessSuspended`` or a ``left`` date that has passed make an identity inactive.
- **Guests are not imported** (``orgRelation=MEMBER``, Space's default): they are outside
  collaborators, and nothing in a listed profile would let a role mapping tell them apart from
  members. A member turned guest vanishes from the list, so the sync deactivates them.
- **Sub-teams count**: a member of a team is a member of every team above it (from the ``parent``
  links), so a mapping "Space team Release -> role" also covers everyone in Release's sub-teams.
  Archived and disbanded teams are not yielded, so their memberships vanish.
- **Space roles** (job titles inside team memberships) become ``attributes["space_roles"]`` for
  claim mappings. They come with each profile (``memberships(role(name))``), so neither
  ``team-directory/roles`` nor ``team-directory/memberships`` is read.
- Paging stops on an empty ``data`` page: Space still sets ``next`` on the last page (as the
  official SDK's ``Batch.HasNext`` handles it).
- Memberships are only yielded for profiles the same fetch yielded (not for guests, or for someone
  who joined after the profiles were read: the next sync adds them). A team deleted while it is read
  is skipped. A person moving between teams during a sync may show in both (or neither) until the
  next one: each team's member list is exact at the time it was read.
"""

import base64
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar
from urllib.parse import quote

import httpx

from apps.core.crypto import Secret
from apps.identities.choices import SourceKind
from apps.identities.connectors.base import (
    Fetch,
    GroupRecord,
    IdentityRecord,
    MembershipRecord,
    NotFoundError,
    PermanentError,
    ProgressListener,
    Record,
    TransientError,
)
from apps.identities.connectors.http import ApiClient, FetchTally, Refresh, Retry, RetryPolicy, Verdict

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # the SDK's default $top
TOKEN_SCOPE = "**"  # noqa: S105 (a scope) the SDK's "all the application was granted"
TOKEN_EXPIRED = "Access token has expired"  # noqa: S105 (the exact description Space sends; the SDK matches it)
MAX_RETRY_AFTER_SECONDS = 120.0  # a sync is one task with a time limit: never park it for long
NEEDED_PERMISSIONS = "Profile.View (View member profiles), Profile.Memberships.View and Team.View"

PROFILE_FIELDS = (
    "next,totalCount,data(id,username,name(firstName,lastName),emails(email,blocked),archived,notAMember,"
    "suspended,accessSuspended,left,external,locations(location(name),archived),"
    "memberships(role(name),archived))"
)
TEAM_FIELDS = "next,totalCount,data(id,name,description,parent(id),archived,disbanded)"
MEMBER_FIELDS = "next,totalCount,data(id)"
INACTIVE_FLAGS = ("archived", "notAMember", "suspended", "accessSuspended")


@dataclass(frozen=True, slots=True)
class SpaceCredential:
    """A permanent token, or an application's client id and secret (client-credentials flow)."""

    token: str = ""
    client_id: str = ""
    client_secret: str = ""

    @property
    def basic(self) -> str:
        """HTTP Basic client authentication as the SDK sends it: ``client_id:client_secret``, not URL-encoded."""
        return base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode("ascii")

    def __repr__(self) -> str:
        return f"SpaceCredential({'token' if self.token else f'client_id={self.client_id!r}'}, ********)"

    @classmethod
    def parse(cls, secret: Secret | str) -> "SpaceCredential":
        """From the source's credential: JSON ``{"client_id", "client_secret"}`` or ``{"token"}``."""
        text = secret.reveal() if isinstance(secret, Secret) else secret
        expected = 'JSON {"client_id": ..., "client_secret": ...} or {"token": ...}'
        try:
            data = json.loads(text or "")
        except ValueError:
            data = None  # the parse error quotes the text: it must not travel
        if not isinstance(data, dict):
            raise PermanentError(f"the Space credential must be {expected}")
        fields = {key: data.get(key) for key in ("token", "client_id", "client_secret")}
        if any(value is not None and not isinstance(value, str) for value in fields.values()):
            raise PermanentError(f"the Space credential's values must be strings: {expected}")
        credential = cls(**{key: (value or "").strip() for key, value in fields.items()})
        if credential.token and (credential.client_id or credential.client_secret):
            raise PermanentError("the Space credential has both a token and client credentials: keep one")
        if not credential.token and not (credential.client_id and credential.client_secret):
            raise PermanentError(f"the Space credential lacks a token or a client id and secret: {expected}")
        return credential


class SpaceConnector:
    kind: ClassVar[str] = SourceKind.SPACE
    incremental: ClassVar[bool] = False
    parse_credential = staticmethod(SpaceCredential.parse)

    def __init__(
        self,
        *,
        org_url: str,
        credential: SpaceCredential,
        sleep: Callable[[float], None] = time.sleep,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.org_url = org_url.rstrip("/").removesuffix("/api/http")
        self._credential, self._clock = credential, clock
        self._access_token, self._token_refresh_at = "", 0.0
        self.client = ApiClient(
            base_url=f"{self.org_url}/api/http/",
            authorize=self._authorize,
            classify=self._classify,
            policy=policy,
            sleep=sleep,
        )

    @classmethod
    def from_source(
        cls, source, *, sleep: Callable[[float], None] = time.sleep, policy: RetryPolicy | None = None, **options
    ) -> "SpaceConnector":
        """``options``: ``clock`` (monotonic seconds, for the token's lifetime)."""
        credential = SpaceCredential.parse(source.credential)
        return cls(org_url=source.base_url, credential=credential, sleep=sleep, policy=policy, **options)

    def fetch(self, *, since: datetime | None = None, progress: ProgressListener | None = None) -> Fetch:
        """Everything, whatever ``since`` says (see the module docstring)."""
        return Fetch(records=self._records(FetchTally(listener=progress, client=self.client)), complete=True)

    def close(self) -> None:
        self.client.close()

    # records

    def _records(self, tally: FetchTally) -> Iterator[Record]:
        today = datetime.now(UTC).date()
        known: set[str] = set()
        profiles = {"reportPastMembers": "true", "orgRelation": "MEMBER", "$fields": PROFILE_FIELDS}
        for page in self._pages("team-directory/profiles", profiles, stage="profiles", tally=tally):
            for profile in page:
                record = _identity(profile, today=today)
                if record is not None and record.external_id not in known:  # offset paging repeats rows
                    known.add(record.external_id)
                    yield tally.count(record)
        teams: dict[str, dict] = {}
        for page in self._pages("team-directory/teams", {"$fields": TEAM_FIELDS}, stage="teams", tally=tally):
            for team in filter(_live_team, page):
                teams.setdefault(team["id"], team)
        direct: dict[str, set[str]] = {}
        for team_id, team in teams.items():
            try:
                direct[team_id] = self._direct_members(team, tally=tally)
            except NotFoundError:
                logger.info("Space team %s disappeared while it was read; skipped", team_id)
        for team_id, members in _with_sub_teams(teams, direct).items():
            name, description = teams[team_id].get("name") or team_id, teams[team_id].get("description") or ""
            yield tally.count(GroupRecord(external_id=team_id, name=name, description=description))
            for member in sorted(members & known):
                yield tally.count(MembershipRecord(identity_external_id=member, group_external_id=team_id))

    def _direct_members(self, team: dict, *, tally: FetchTally) -> set[str]:
        path = f"team-directory/teams/{quote(team['id'], safe='')}/direct-members"
        stage = f"members of {team.get('name') or team['id']}"
        pages = self._pages(path, {"$fields": MEMBER_FIELDS}, stage=stage, tally=tally)
        return {profile["id"] for page in pages for profile in page}

    def _pages(self, path: str, params: dict, *, stage: str, tally: FetchTally) -> Iterator[list[dict]]:
        """The ``data`` of each page of a Space ``Batch``, until a page comes back empty."""
        skip = None
        while True:
            query = {**params, "$top": str(PAGE_SIZE), **({"$skip": skip} if skip is not None else {})}
            body = self.client.get(path, params=query).json()
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, list):
                raise PermanentError(f"GET {path}: the answer is not a Space batch (no data list)")
            items = [item for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
            if data:
                yield items
            tally.page(stage)
            following = body.get("next")
            if not data or not isinstance(following, str) or not following:
                return
            if following == skip:
                raise TransientError(f"GET {path}: paging did not advance past {skip!r}")
            skip = following

    # HTTP

    def _authorize(self, refresh: bool) -> dict[str, str]:
        if self._credential.token:
            return {"Authorization": f"Bearer {self._credential.token}"}
        if refresh or not self._access_token or self._clock() >= self._token_refresh_at:
            self._request_token()
        return {"Authorization": f"Bearer {self._access_token}"}

    def _request_token(self) -> None:
        """Client credentials: ``POST <org>/oauth/token`` with HTTP Basic client authentication."""
        requested_at = self._clock()
        response = self.client.post_form(
            f"{self.org_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": TOKEN_SCOPE},
            headers={"Authorization": f"Basic {self._credential.basic}", "Accept": "application/json"},
        )
        body = _json_or_none(response)
        if response.status_code != 200:
            code, description = _error_of(body)
            raise PermanentError(
                f"POST /oauth/token: Space refused the client credentials (HTTP {response.status_code}"
                f"{f' {code}' if code else ''}{f': {self._redact(description)}' if description else ''})"
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TransientError("POST /oauth/token: the answer has no access_token")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            # renew early: a request must not leave with a token that expires on its way
            self._token_refresh_at = requested_at + expires_in - min(60.0, expires_in / 10)
        else:
            self._token_refresh_at = math.inf  # no lifetime given: renew when Space says it expired
        self._access_token = token
        logger.info("obtained a Space access token for %s (expires in %s s)", self.org_url, expires_in)

    def _classify(self, response: httpx.Response) -> Verdict:
        status = response.status_code
        body = _json_or_none(response)
        if status < 300:
            return Retry("malformed JSON in the answer") if body is None else None
        code, description = _error_of(body)
        said = self._redact(description)
        if status == 429 or code == "rate-limited":
            return Retry("rate limited", after=_retry_after(response))
        if status >= 500 or code == "internal-server-error":
            return Retry(f"HTTP {status}{f' {code}' if code else ''}")
        if code == "authentication-required" or status == 401:
            if description == TOKEN_EXPIRED and not self._credential.token:
                return Refresh("the access token expired")
            if description == TOKEN_EXPIRED:
                return PermanentError("the permanent token has expired: create a new one in Space")
            return PermanentError(f"Space refused the credentials ({said or f'HTTP {status}'})")
        if code == "permission-denied" or status == 403:
            reason = said or f"HTTP {status}"
            return PermanentError(f"permission denied ({reason}); the application needs {NEEDED_PERMISSIONS}")
        if (code == "not-found" or status == 404) and response.request.url.path.endswith("/direct-members"):
            return NotFoundError(f"not found ({said or f'HTTP {status}'})")  # the team went while it was read
        if code == "not-found" or status == 404:
            return PermanentError(f"not found ({said or f'HTTP {status}'}): is {self.org_url} a Space organization?")
        return PermanentError(f"HTTP {status}{f' {code}' if code else ''}{f': {said}' if said else ''}")

    def _redact(self, text: str) -> str:
        """Space's error text, shortened, never carrying a credential (were it ever echoed back)."""
        credential = self._credential
        basic = credential.basic if credential.client_id else ""
        for secret in (credential.token, credential.client_secret, basic, self._access_token):
            if secret:
                text = text.replace(secret, "********")
        return text[:300]


def _identity(profile: dict, *, today: date) -> IdentityRecord | None:
    username = profile.get("username")
    if not isinstance(username, str) or not username:
        logger.warning("Space profile %s has no username; skipped", profile["id"])
        return None
    name = profile.get("name") if isinstance(profile.get("name"), dict) else {}
    display_name = " ".join(part for part in (name.get("firstName"), name.get("lastName")) if isinstance(part, str))
    emails = [entry for entry in _list(profile, "emails") if isinstance(entry.get("email"), str)]
    usable = [entry["email"] for entry in emails if not entry.get("blocked")]
    inactive_because = [flag for flag in INACTIVE_FLAGS if profile.get(flag) is True]
    left = _date(profile.get("left"))
    if left is not None and left <= today:
        inactive_because.append("left")
    memberships = [entry for entry in _list(profile, "memberships") if not entry.get("archived")]
    locations = [entry for entry in _list(profile, "locations") if not entry.get("archived")]
    attributes = {
        "space_roles": _names(memberships, "role"),
        "locations": _names(locations, "location"),
        "external": profile.get("external") is True,
    }
    if inactive_because:
        attributes["inactive_because"] = inactive_because
    return IdentityRecord(
        external_id=profile["id"],
        username=username,
        email=usable[0] if usable else "",
        display_name=display_name.strip() or username,
        active=not inactive_because,
        attributes=attributes,
    )


def _live_team(team: dict) -> bool:
    # withArchived=false already leaves them out; a team archived between pages may still slip in
    return team.get("archived") is not True and team.get("disbanded") is not True


def _with_sub_teams(teams: dict[str, dict], direct: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each team read, with the direct members of every team below it (cycles are cut)."""
    parents = {team_id: (team.get("parent") or {}).get("id") for team_id, team in teams.items()}
    members = {team_id: set(ids) for team_id, ids in direct.items()}
    for team_id, ids in direct.items():
        seen, above = {team_id}, parents.get(team_id)
        while above in teams and above not in seen:
            seen.add(above)
            if above in members:
                members[above] |= ids
            above = parents.get(above)
    return members


def _list(item: dict, key: str) -> list[dict]:
    value = item.get(key)
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _names(items: list[dict], key: str) -> list[str]:
    """The distinct names of the objects under ``key`` (a membership's role, a location's place)."""
    objects = [item[key] for item in items if isinstance(item.get(key), dict)]
    return sorted({value["name"] for value in objects if isinstance(value.get("name"), str)})


def _date(value) -> date | None:
    """Space sends dates as ``{"iso": "2024-01-31", "timestamp": …}`` (the SDK's SpaceDateConverter)."""
    text = value.get("iso") if isinstance(value, dict) else value
    try:
        return date.fromisoformat(text[:10]) if isinstance(text, str) else None
    except ValueError:
        return None


def _json_or_none(response: httpx.Response):
    try:
        return response.json()
    except ValueError:  # also UnicodeDecodeError
        return None


def _error_of(body) -> tuple[str, str]:
    """``{"error": code, "error_description": text}``, Space's error body."""
    if not isinstance(body, dict):
        return "", ""
    code, description = body.get("error"), body.get("error_description")
    return (code if isinstance(code, str) else ""), (description if isinstance(description, str) else "")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS) if math.isfinite(seconds) else None

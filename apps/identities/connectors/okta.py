"""Okta: an org's users, groups and group members, read from the Management API (``/api/v1``)
with an API token or a service app (``okta_auth``), paged by ``Link`` headers and paced by Okta's
rate-limit headers.

What a user's ``status`` means for access (a demanding security admin's reading; the raw status is
kept in ``attributes["status"]`` so role mappings can be stricter still):

- ``ACTIVE``: active.
- ``PASSWORD_EXPIRED``: active. Routine rotation, not a security event: the person is still employed,
  still passes MFA, and signs in again once they set a new password.
- ``LOCKED_OUT``: inactive. Too many failed sign-ins, which may be someone else guessing; Okta itself
  lets no one in until an unlock, and the next sync after the unlock gives access back.
- ``RECOVERY``: inactive. An admin or the user reset the credentials (often after a suspected
  compromise); no working credential exists until recovery is completed.
- ``STAGED`` / ``PROVISIONED``: inactive. Created, or activated but never set up: nobody has used
  this account yet.
- ``SUSPENDED`` / ``DEPROVISIONED``: inactive.
- any other (a status Okta adds later): inactive. Unknown means no.

An identity is a service account when ``profile.userType`` says "service", "service account" or
"bot" (case, spaces, dashes and underscores ignored); otherwise a person. ``attributes`` are the
profile (Okta profiles hold no secrets) plus ``status``.

Full fetch: ``GET /api/v1/users`` without a filter silently omits DEPROVISIONED users, so it asks for
``lastUpdated gt "1970-01-01T00:00:00.000Z"``, which every user matches whatever their status (and
keeps matching if Okta adds statuses, unlike a list of ``status eq`` terms).
Incremental fetch: ``lastUpdated`` (users) and ``lastUpdated`` / ``lastMembershipUpdated`` (groups)
after ``since``. Okta stores these to the second, so the filter starts one millisecond before the
second ``since`` falls in: a change in that same second is read again rather than lost.
One user (``fetch_identity``, for event hooks): ``GET /api/v1/users/{id}``, which answers DEPROVISIONED
users too (404 only once deleted outright), and ``GET /api/v1/users/{id}/groups`` (paged like the
other lists; the Okta docs do not say it is, so the ``Link`` headers are followed either way).
"""

import ipaddress
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import ClassVar
from urllib.parse import quote, urlsplit

import httpx

from apps.identities.choices import IdentityKind, SourceKind
from apps.identities.connectors.base import (
    Fetch,
    GroupRecord,
    IdentityRead,
    IdentityRecord,
    MembershipRecord,
    NotFoundError,
    PermanentError,
    ProgressListener,
    Record,
)
from apps.identities.connectors.http import ApiClient, FetchTally, Pacer, Refresh, Retry, RetryPolicy, Verdict
from apps.identities.connectors.okta_auth import ApiToken, BearerTokens, Credential, credential_parse

logger = logging.getLogger(__name__)

USERS_PAGE = 200  # Okta's maximum for /users
GROUPS_PAGE = 200
MEMBERS_PAGE = 1000  # Okta's default for /groups/{id}/users: a fifth of the requests at 200
ACTIVE_STATUSES = frozenset({"ACTIVE", "PASSWORD_EXPIRED"})
SERVICE_USER_TYPES = frozenset({"service", "serviceaccount", "bot"})
EVERY_USER = 'lastUpdated gt "1970-01-01T00:00:00.000Z"'
RESERVE_MIN = 5  # keep at least this many requests (or a tenth of the budget) for the org's other clients
MAX_WAIT = 120.0  # Okta's windows are a minute; a reset further off is wrong, not a reason to stall
SCOPE_FOR = {"/api/v1/users": "okta.users.read", "/api/v1/groups": "okta.groups.read"}


class OktaConnector:
    kind: ClassVar[str] = SourceKind.OKTA
    incremental: ClassVar[bool] = True
    parse_credential = staticmethod(credential_parse)

    def __init__(
        self,
        *,
        base_url: str,
        credential: Credential,
        sleep: Callable[[float], None] = time.sleep,
        policy: RetryPolicy | None = None,
    ):
        self._origin = _org_origin(base_url)
        self._credential = credential
        self._pacer = RateLimitPacer(sleep=sleep)
        self._api = ApiClient(
            base_url=self._origin,
            authorize=self._authorize,
            classify=self._classify,
            policy=policy,
            pacer=self._pacer,
            sleep=sleep,
        )
        self._bearer = (
            None
            if isinstance(credential, ApiToken)
            else BearerTokens(app=credential, token_url=f"{self._origin}/oauth2/v1/token", post=self._api.post_form)
        )

    @classmethod
    def from_source(cls, source, *, sleep: Callable[[float], None] = time.sleep, policy: RetryPolicy | None = None):
        return cls(base_url=source.base_url, credential=credential_parse(source.credential), sleep=sleep, policy=policy)

    def fetch(self, *, since: datetime | None = None, progress: ProgressListener | None = None) -> Fetch:
        return Fetch(records=self._records(since, FetchTally(progress, self._api)), complete=since is None)

    def fetch_identity(self, *, external_id: str) -> IdentityRead:
        """One user and its groups, as the full fetch records them; a user (or its group list)
        answering 404 was deleted: an ``IdentityRead`` without identity."""
        path = f"/api/v1/users/{quote(external_id, safe='')}"
        try:
            self._pacer.aim(path)
            _, user = self._api.get_json(path)
            if not isinstance(user, dict) or not user.get("id"):
                raise PermanentError(f"GET {path}: expected a user object")
            groups: dict[str, GroupRecord] = {}
            for page in self._pages(f"{path}/groups", {"limit": GROUPS_PAGE}):
                groups.update((group["id"], group_record(group)) for group in page if group.get("id"))
        except NotFoundError:
            return IdentityRead(external_id=external_id, identity=None)
        identity = identity_record(user)
        return IdentityRead(
            external_id=identity.external_id,
            identity=identity,
            groups=tuple(groups.values()),
            memberships=tuple(MembershipRecord(identity.external_id, group_id) for group_id in groups),
        )

    def close(self) -> None:
        self._api.close()

    def _records(self, since: datetime | None, tally: FetchTally) -> Iterator[Record]:
        users_filter = EVERY_USER if since is None else f'lastUpdated gt "{_okta_time_before(since)}"'
        seen: set[str] = set()
        for page in self._pages("/api/v1/users", {"limit": USERS_PAGE, "filter": users_filter}):
            for user in page:
                if user.get("id") and user["id"] not in seen:  # a user moved across pages comes twice
                    seen.add(user["id"])
                    yield identity_record(user)
                    tally.records += 1
            tally.page("users")
        seen.clear()
        params: dict = {"limit": GROUPS_PAGE}
        if since is not None:
            after = _okta_time_before(since)
            params["filter"] = f'lastUpdated gt "{after}" or lastMembershipUpdated gt "{after}"'
        for page in self._pages("/api/v1/groups", params):
            groups = [group_record(group) for group in page if group.get("id") and group["id"] not in seen]
            seen.update(group.external_id for group in groups)
            tally.page("groups")
            for group in groups:
                members = self._members(group, tally)
                if members is None:
                    continue
                yield group
                for member in members:
                    yield MembershipRecord(identity_external_id=member, group_external_id=group.external_id)
                tally.records += 1 + len(members)

    def _members(self, group: GroupRecord, tally: FetchTally) -> list[str] | None:
        """All member ids of ``group`` (each once), or None when it was deleted meanwhile. Read
        whole before the group is yielded: a group yielded must come with all its members."""
        members: dict[str, None] = {}
        try:
            for page in self._pages(
                f"/api/v1/groups/{quote(group.external_id, safe='')}/users", {"limit": MEMBERS_PAGE}
            ):
                members.update((user["id"], None) for user in page if user.get("id"))
                tally.page(f"members of {group.name}")
        except NotFoundError:
            logger.info("Okta group %s was deleted while it was read; skipped", group.external_id)
            return None
        return list(members)

    def _pages(self, path: str, params: dict) -> Iterator[list]:
        """Each page's JSON array, following the whole ``rel="next"`` URL (its cursor is opaque)."""
        url, query = path, params
        while True:
            self._pacer.aim(url)
            response, body = self._api.get_json(url, params=query)
            if not isinstance(body, list):
                raise PermanentError(f"GET {urlsplit(url).path}: expected a JSON array, got {type(body).__name__}")
            yield body
            next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            url, query = self._same_org(next_url), None

    def _same_org(self, url: str) -> str:
        # The next request carries the credential: never to a host the org did not answer from.
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self._origin:
            raise PermanentError(f"the next-page link leads away from the Okta org ({parts.scheme}://{parts.hostname})")
        return url

    def _authorize(self, refresh: bool) -> dict[str, str]:
        if self._bearer is None:
            return {"Authorization": f"SSWS {self._credential.token}", "Accept": "application/json"}
        return {"Authorization": self._bearer.header(refresh), "Accept": "application/json"}

    def _classify(self, response: httpx.Response) -> Verdict:
        status = response.status_code
        if status < 300:
            return None
        code, summary = _okta_error(response)
        if status == 429:
            budget = _budget(response)
            if budget is None or budget[0] == 0:  # Limit 0 with Remaining 0: the concurrency limit
                return Retry(f"too many requests ({code})")
            return Retry(f"rate limit exceeded ({code})", after=budget[2])
        if status == 401 and self._bearer is not None:
            return Refresh("the access token was refused")
        if status == 401:
            return PermanentError(f"the API token was refused ({code}: {summary})")
        if status == 403:
            return PermanentError(f"access denied ({code}: {summary}); {self._missing(response)}")
        if status == 404:
            return NotFoundError(f"not found ({code}: {summary})")
        if status >= 500:
            return Retry(f"HTTP {status} ({code})")
        return PermanentError(f"HTTP {status} ({code}: {summary})")

    def _missing(self, response: httpx.Response) -> str:
        scope = SCOPE_FOR.get(_family(response.request.url.path), "okta.users.read and okta.groups.read")
        if self._bearer is None:
            return "the API token's admin needs a role that may read users and groups (e.g. Read-only Administrator)"
        return f"grant the service app the scope {scope} in Okta and list it in the credential's 'scopes'"


class RateLimitPacer(Pacer):
    """Okta budgets requests per endpoint family: ``X-Rate-Limit-Limit`` per window,
    ``X-Rate-Limit-Remaining`` left in it, ``X-Rate-Limit-Reset`` when it refills (epoch seconds, on
    Okta's clock, so the wait is measured against the response's ``Date`` as the Okta SDK does). When
    a family's last answer left less than the reserve, the next request to it waits for the refill."""

    def __init__(self, *, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic):
        self._sleep, self._clock = sleep, clock
        self._resume_at: dict[str, float] = {}
        self._upcoming = ""

    def aim(self, url: str) -> None:
        """The family the next request goes to (the ``ApiClient`` tells the pacer nothing about it)."""
        self._upcoming = _family(urlsplit(url).path)

    def before(self) -> None:
        resume_at = self._resume_at.pop(self._upcoming, None)
        delay = 0.0 if resume_at is None else resume_at - self._clock()
        if delay > 0:
            logger.info("Okta rate limit for %s nearly spent; waiting %.1f s for it to refill", self._upcoming, delay)
            self._sleep(delay)

    def after(self, response: httpx.Response) -> None:
        family = _family(response.request.url.path)
        budget = _budget(response)
        # After a 429 the retry waits (classify's Retry(after=…)); waiting here as well would wait twice.
        if response.status_code == 429 or budget is None or budget[0] == 0:
            self._resume_at.pop(family, None)
            return
        limit, remaining, wait = budget
        if remaining < max(RESERVE_MIN, limit // 10):
            self._resume_at[family] = self._clock() + wait
        else:
            self._resume_at.pop(family, None)


def identity_record(user: dict) -> IdentityRecord:
    """An Okta user object as policyhub's identity (the demo seeds its recorded users with it too)."""
    profile = user.get("profile") or {}
    status = str(user.get("status") or "")
    login = str(profile.get("login") or user["id"])
    full_name = " ".join(str(part) for part in (profile.get("firstName"), profile.get("lastName")) if part)
    user_type = "".join(char for char in str(profile.get("userType") or "").lower() if char.isalpha())
    return IdentityRecord(
        external_id=user["id"],
        username=login,
        kind=IdentityKind.SERVICE if user_type in SERVICE_USER_TYPES else IdentityKind.PERSON,
        email=str(profile.get("email") or ""),
        display_name=str(profile.get("displayName") or full_name or login),
        active=status in ACTIVE_STATUSES,
        attributes={**profile, "status": status},
    )


def group_record(group: dict) -> GroupRecord:
    profile = group.get("profile") or {}
    return GroupRecord(
        external_id=group["id"],
        name=str(profile.get("name") or group["id"]),
        description=str(profile.get("description") or ""),
    )


def _okta_time_before(since: datetime) -> str:
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    moment = since.astimezone(UTC).replace(microsecond=0) - timedelta(milliseconds=1)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _family(path: str) -> str:
    """Okta's rate-limit family of a path: ``/api/v1/users``, ``/api/v1/groups`` (members included)."""
    return "/".join(path.split("/")[:4])


def _budget(response: httpx.Response) -> tuple[int, int, float] | None:
    """(limit, remaining, seconds until the refill) from the rate-limit headers, or None."""
    headers = response.headers
    try:
        limit = int(headers["X-Rate-Limit-Limit"])
        remaining = int(headers["X-Rate-Limit-Remaining"])
        reset = int(headers["X-Rate-Limit-Reset"])
    except (KeyError, ValueError):
        return None
    try:
        now = parsedate_to_datetime(headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        now = time.time()
    return limit, remaining, min(max(reset - now, 0.0) + 1, MAX_WAIT)


def _okta_error(response: httpx.Response) -> tuple[str, str]:
    """Okta's ``errorCode`` and ``errorSummary`` (describe the request, never echo the credential)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}", "no Okta error body"
    return str(body.get("errorCode") or "no code"), str(body.get("errorSummary") or "")[:200]


def _org_origin(base_url: str) -> str:
    parts = urlsplit((base_url or "").strip())
    if parts.scheme not in {"https", "http"} or not parts.hostname or parts.username:
        raise PermanentError("the Okta org URL must look like https://<org>.okta.com")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise PermanentError("the Okta org URL must use https: the credential would travel in clear")
    return f"{parts.scheme}://{parts.netloc}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

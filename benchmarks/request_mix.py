"""Pre-generated decide() requests: a realistic mix of hits, misses and edge cases, and the check
that a sample of them exercises every decision path (so a degenerate fast path cannot pass)."""

import random
from collections import Counter, defaultdict

from benchmarks.dataset import ALL_METHODS, PATH_WORDS


class RequestMix:
    """Pre-generated (identity, method, host, path, client_ip) arguments for decide()."""

    KINDS = {
        "route": 45,
        "wildcard": 12,
        "anonymous": 10,
        "unknown_host": 7,
        "wrong_method": 5,
        "unrouted_path": 5,
        "inactive": 4,
        "unknown_subject": 2,
        "non_canonical": 2,
    }

    def __init__(self, rng: random.Random, policy, inactive: list[str]):
        self.rng = rng
        self.exact = [route for route in policy.routes if not route.host.startswith("*.")]
        self.wildcard = [route for route in policy.routes if route.host.startswith("*.")]
        self.restricted = [route for route in self.exact if route.methods]
        self.subjects = list(policy.identity_roles)
        self.holders = defaultdict(list)
        for subject, roles in policy.identity_roles.items():
            for role in roles:
                self.holders[role].append(subject)
        self.inactive = inactive or ["okta:nobody"]

    def build(self, count: int) -> list[tuple]:
        kinds = self.rng.choices(list(self.KINDS), weights=list(self.KINDS.values()), k=count)
        return [getattr(self, f"_{kind}")() for kind in kinds]

    # One builder per kind of request.

    def _route(self):
        route = self.rng.choice(self.exact)
        return self._identity(route), self._method(route), self._host(route), self._path(route), self._ip()

    def _wildcard(self):
        route = self.rng.choice(self.wildcard)
        return self._identity(route), self._method(route), self._host(route), self._path(route), self._ip()

    def _anonymous(self):
        route = self.rng.choice(self.exact)
        return None, self._method(route), self._host(route), self._path(route), self._ip()

    def _unknown_host(self):
        pattern = self.rng.choice(("svc{}.unknown.example.org", "nothing{}.example.com", "[2001:db8::{}]:443"))
        host = pattern.format(self.rng.randrange(1000))
        route = self.rng.choice(self.exact)
        return self._identity(route), "GET", host, self._path(route), self._ip()

    def _wrong_method(self):
        route = self.rng.choice(self.restricted)
        method = self.rng.choice([m for m in ALL_METHODS if m not in route.methods])
        return self._identity(route), method, self._host(route), self._path(route), self._ip()

    def _unrouted_path(self):
        route = self.rng.choice(self.exact)
        path = f"/zz-{self.rng.choice(PATH_WORDS)}/{self.rng.randrange(10**6)}"
        return self._identity(route), self._method(route), self._host(route), path, self._ip()

    def _inactive(self):
        route = self.rng.choice(self.exact)
        subject = self.rng.choice(self.inactive)
        return subject, self._method(route), self._host(route), self._path(route), self._ip()

    def _unknown_subject(self):
        route = self.rng.choice(self.exact)
        subject = f"okta:deleted-{self.rng.randrange(10**6)}"
        return subject, self._method(route), self._host(route), self._path(route), self._ip()

    def _non_canonical(self):
        route = self.rng.choice(self.exact)
        trick = self.rng.choice(("/../admin", "/%2e%2e/admin", "/./x", "/a%2Fb", "/a\\b"))
        path = self._path(route).rstrip("/") + trick
        return self._identity(route), self._method(route), self._host(route), path, self._ip()

    # Parts of a request.

    def _identity(self, route) -> str:
        """Half the time, for a route with a roles rule, someone who holds one of its roles."""
        wanted = sorted(role for rule in route.allow_rules if rule.auth_mode == "roles" for role in rule.roles)
        holders = self.holders.get(self.rng.choice(wanted)) if wanted else None
        if holders and self.rng.random() < 0.5:
            return self.rng.choice(holders)
        return self.rng.choice(self.subjects)

    def _method(self, route) -> str:
        if route.methods:
            return self.rng.choice(sorted(route.methods))
        return self.rng.choice(("GET", "GET", "GET", "GET", "POST", "PUT", "DELETE", "HEAD"))

    def _host(self, route) -> str:
        host = route.host
        if host.startswith("*."):
            host = f"{self.rng.choice(PATH_WORDS)}{self.rng.randrange(100)}{host[1:]}"
        roll = self.rng.random()
        if roll < 0.1:
            return host.upper()
        return f"{host}:443" if roll < 0.2 else host

    def _path(self, route) -> str:
        base = "" if route.path_prefix == "/" else route.path_prefix
        extra = [self.rng.choice((*PATH_WORDS, "42", "item-7")) for _ in range(self.rng.choice((0, 0, 1, 2)))]
        path = "/".join([base, *extra]) or "/"
        roll = self.rng.random()
        if roll < 0.1:
            return path.rstrip("/") + "/"
        return f"{path}?page=2" if roll < 0.2 else path

    def _ip(self) -> str | None:
        rng = self.rng
        kind = rng.choices(("office4", "vpn", "blocked4", "other4", "office6", "blocked6", "mapped", "none"),
                           weights=(30, 10, 5, 20, 15, 3, 7, 10))[0]  # fmt: skip
        octet = rng.randrange(1, 255)
        return {
            "office4": f"10.20.{rng.randrange(256)}.{octet}",
            "vpn": f"192.0.2.{octet}",
            "blocked4": f"198.51.100.{octet}",
            "other4": f"203.0.113.{octet}",
            "office6": f"2001:db8:100::{octet:x}",
            "blocked6": f"2001:db8:bad::{octet:x}",
            "mapped": f"::ffff:10.20.1.{octet}",
            "none": None,
        }[kind]


EXPECTED_REASONS = frozenset(
    {
        "allowed",
        "path_not_canonical",
        "no_route",
        "method_not_allowed",
        "denied_by_rule",
        "authentication_required",
        "identity_not_active",
        "missing_role",
        "network_not_allowed",
    }
)


def check_sanity(policy, requests) -> tuple[bool, float, Counter]:
    """Decide a sample: some allowed, some denied, every expected reason present, wildcards routed."""
    from apps.policies.decide import decide

    reasons: Counter = Counter()
    allowed = wildcard_routed = 0
    for request in requests:
        decision = decide(policy, *request)
        allowed += decision.allowed
        wildcard_routed += bool(decision.route and decision.route.host.startswith("*."))
        reasons.update(str(reason.code) for reason in decision.reasons)
    share = allowed / len(requests)
    ok = 0.05 <= share <= 0.95 and set(reasons) >= EXPECTED_REASONS and wildcard_routed > 0
    return ok, share, reasons

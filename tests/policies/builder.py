"""Build compiled policies directly from snapshot-shaped data, for pure decide() tests."""

from apps.policies.snapshot import compile_policy, content_sha256


def rule(
    auth_mode: str = "public",
    *,
    effect: str = "allow",
    roles=(),
    cidrs=(),
    rate_limit_per_minute=None,
    identity_headers=(),
    cache_seconds: int = 0,
) -> dict:
    return {
        "effect": effect,
        "auth_mode": auth_mode,
        "roles": sorted(roles),
        "allowed_cidrs": list(cidrs),
        "rate_limit_per_minute": rate_limit_per_minute,
        "identity_headers": list(identity_headers),
        "cache_seconds": cache_seconds,
    }


def rule_key(route_key: str, index: int) -> str:
    """Like a snapshot's rule keys: 16 lower-case hex digits (what a signed link names)."""
    return content_sha256(f"{route_key}#{index}")[:16]


def route(
    host: str, path_prefix: str = "/", *rules: dict, methods=(), gateway: str = "edge", signed_links: bool = False
) -> dict:
    key = f"{gateway}/{host}{path_prefix}"
    return {
        "key": key,
        "gateway": gateway,
        "application": "app",
        "host": host,
        "path_prefix": path_prefix,
        "methods": sorted(methods),
        "upstream_url": "http://127.0.0.1:9000",
        "signed_links": signed_links,
        "rules": [{**body, "key": rule_key(key, index)} for index, body in enumerate(rules)],
    }


def policy(*routes: dict, identities: dict[str, list[str]] | None = None):
    roles = sorted({role for r in routes for body in r["rules"] for role in body["roles"]})
    return compile_policy({"format": 2, "roles": roles, "gateways": [], "routes": list(routes),
                           "identities": identities or {}})  # fmt: skip

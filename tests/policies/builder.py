"""Build compiled policies directly from snapshot-shaped data, for pure decide() tests."""

from apps.policies.snapshot import compile_policy


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


def route(host: str, path_prefix: str = "/", *rules: dict, methods=(), gateway: str = "edge") -> dict:
    key = f"{gateway}/{host}{path_prefix}"
    return {
        "key": key,
        "gateway": gateway,
        "application": "app",
        "host": host,
        "path_prefix": path_prefix,
        "methods": sorted(methods),
        "upstream_url": "http://127.0.0.1:9000",
        "rules": [{**body, "key": f"{key}#{index}"} for index, body in enumerate(rules)],
    }


def policy(*routes: dict, identities: dict[str, list[str]] | None = None):
    roles = sorted({role for r in routes for body in r["rules"] for role in body["roles"]})
    return compile_policy({"format": 1, "roles": roles, "gateways": [], "routes": list(routes),
                           "identities": identities or {}})  # fmt: skip

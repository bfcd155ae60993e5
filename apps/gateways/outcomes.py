"""The HTTP status a gateway answers for each decision: the contract the equivalence proof checks."""

from apps.policies.decide import Decision, ReasonCode

ALLOWED_STATUS = 200  # what the proof's echo upstream answers
SIGN_IN_REDIRECT_STATUS = 302  # a navigation that needs an identity goes to policyhub's sign-in
_STATUS = {
    ReasonCode.PATH_NOT_CANONICAL: 400,
    ReasonCode.NO_ROUTE: 404,
    ReasonCode.METHOD_NOT_ALLOWED: 405,
    ReasonCode.DENIED_BY_RULE: 403,
    ReasonCode.NO_ALLOW_RULE: 403,
    ReasonCode.MISSING_ROLE: 403,
    ReasonCode.NETWORK_NOT_ALLOWED: 403,
}
_NEEDS_IDENTITY = frozenset({ReasonCode.AUTHENTICATION_REQUIRED, ReasonCode.IDENTITY_NOT_ACTIVE})


def expected_status(decision: Decision, *, navigation: bool = False) -> int:
    """200 when allowed; 401 when some allow rule needed an identity the request did not carry, or
    302 to sign in for a ``navigation`` (a browser's page request at a gateway with browser sign-in,
    renderers/base.py S4); otherwise the status of the first reason (400, 404, 405 or 403)."""
    if decision.allowed:
        return ALLOWED_STATUS
    codes = [reason.code for reason in decision.reasons]
    if _NEEDS_IDENTITY.intersection(codes):
        return SIGN_IN_REDIRECT_STATUS if navigation else 401
    return _STATUS[codes[0]]

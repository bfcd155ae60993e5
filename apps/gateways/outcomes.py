"""The HTTP status a gateway answers for each decision: the contract the equivalence proof checks."""

from apps.policies.decide import Decision, ReasonCode

ALLOWED_STATUS = 200  # what the proof's echo upstream answers
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


def expected_status(decision: Decision) -> int:
    """200 when allowed; 401 when some allow rule needed an identity the request did not carry;
    otherwise the status of the first reason (400, 404, 405 or 403)."""
    if decision.allowed:
        return ALLOWED_STATUS
    codes = [reason.code for reason in decision.reasons]
    if _NEEDS_IDENTITY.intersection(codes):
        return 401
    return _STATUS[codes[0]]

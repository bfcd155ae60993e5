"""One error shape for every API error: RFC 9457 problem details (``application/problem+json``).

``{"type", "title", "status", "detail", "code", "errors"}``: ``code`` is a stable machine-readable
word (DRF's codes: ``not_authenticated``, ``authentication_failed``, ``permission_denied``,
``not_found``, ``invalid``, … or a view's own) and ``type`` is the URN naming it; ``title`` is the
HTTP status phrase; ``detail`` reads well on its own; ``errors`` maps input field names to their
problems (empty when the problem is not about one field).
"""

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:policyhub:problem:"


def problem_body(status_code: int, code: str, detail: str, errors: dict | None = None) -> dict:
    return {
        "type": f"{PROBLEM_TYPE_PREFIX}{code}",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code,
        "errors": errors or {},
    }


def problem_response(status_code: int, code: str, detail: str) -> JsonResponse:
    """A problem answered outside DRF's views (plain Django views under /api/)."""
    return JsonResponse(problem_body(status_code, code, detail), status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _first_code(detail) -> str:
    if isinstance(detail, dict):
        return _first_code(next(iter(detail.values()), "invalid"))
    if isinstance(detail, list):
        return _first_code(detail[0]) if detail else "invalid"
    return getattr(detail, "code", None) or "invalid"


def _validation_body(status_code: int, detail) -> dict:
    if isinstance(detail, dict):
        errors = {name: _messages(problems) for name, problems in detail.items()}
        message = "; ".join(f"{name}: {' '.join(problems)}" for name, problems in errors.items())
        return problem_body(status_code, _first_code(detail), message, errors)
    return problem_body(status_code, _first_code(detail), " ".join(str(problem) for problem in detail))


def _messages(problems) -> list[str]:
    """A field's messages; a nested serializer's problems flatten to "inner: message"."""
    if isinstance(problems, dict):
        return [f"{name}: {message}" for name, inner in problems.items() for message in _messages(inner)]
    if isinstance(problems, list):
        return [message for problem in problems for message in _messages(problem)]
    return [str(problems)]


def api_exception_handler(exc, context):
    """DRF's handler (status, headers such as WWW-Authenticate and Allow), then the one shape."""
    if isinstance(exc, DjangoValidationError):  # raised by services (full_clean): the caller's input is wrong
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):  # get_object(): DRF converts these too, but only inside its handler
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, ProtectedError):  # a delete refused by on_delete=PROTECT (or a service saying the same)
        exc = Conflict(_still_referenced(exc), code="protected")
    response = exception_handler(exc, context)
    if response is None:
        # Unexpected: logged with its traceback here (the response no longer reaches Django's handler),
        # and answered without any detail that could carry a secret.
        logger.error("unhandled error in %s", context["view"].__class__.__name__, exc_info=exc)
        return problem_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "internal server error")
    if isinstance(exc, exceptions.ValidationError):  # its detail is always a dict or a list
        response.data = _validation_body(response.status_code, exc.detail)
    else:
        response.data = problem_body(response.status_code, _first_code(exc.detail), str(exc.detail))
    response.content_type = PROBLEM_CONTENT_TYPE
    if isinstance(exc, exceptions.AuthenticationFailed) and "WWW-Authenticate" in response:
        response["WWW-Authenticate"] += ', error="invalid_token"'  # RFC 6750 §3.1: a token was presented
    return response


def _still_referenced(exc: ProtectedError) -> str:
    """'still referenced by 2 routes (a.example.test/, b.example.test/)…': what to change first."""
    by_kind: dict[str, list[str]] = {}
    for referrer in exc.protected_objects:
        by_kind.setdefault(str(referrer._meta.verbose_name_plural), []).append(str(referrer))
    parts = []
    for kind, names in sorted(by_kind.items()):
        shown = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
        parts.append(f"{len(names)} {kind} ({shown})")
    return f"cannot delete: still referenced by {'; '.join(parts)}; change or delete those first"


@csrf_exempt  # like DRF's views: a PUT to an unknown path is a 404 problem, not Django's HTML CSRF page
def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Unknown paths under /api/v1/ answer in the same shape instead of Django's HTML page."""
    return problem_response(404, "not_found", f"no API endpoint at {request.path}")


class Conflict(exceptions.APIException):
    """The request is well-formed but the current state refuses it (e.g. a gateway without a key)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "the current state of policyhub refuses this request"
    default_code = "conflict"

"""One error shape for every API error: ``{"error": {"code", "message", "fields"?}}``.

``code`` is a stable machine-readable word (DRF's codes: ``not_authenticated``,
``authentication_failed``, ``permission_denied``, ``not_found``, ``invalid``, … or a view's own),
``message`` reads well on its own, and ``fields`` maps input field names to their problems.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _first_code(detail) -> str:
    if isinstance(detail, dict):
        return _first_code(next(iter(detail.values()), "invalid"))
    if isinstance(detail, list):
        return _first_code(detail[0]) if detail else "invalid"
    return getattr(detail, "code", None) or "invalid"


def _validation_body(detail) -> dict:
    if isinstance(detail, dict):
        fields = {name: [str(problem) for problem in problems] for name, problems in detail.items()}
        message = "; ".join(f"{name}: {' '.join(problems)}" for name, problems in fields.items())
        return error_body(_first_code(detail), message, fields)
    return error_body(_first_code(detail), " ".join(str(problem) for problem in detail))


def api_exception_handler(exc, context):
    """DRF's handler (status, headers such as WWW-Authenticate and Allow), then the one shape."""
    if isinstance(exc, DjangoValidationError):  # raised by services (full_clean): the caller's input is wrong
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):  # get_object(): DRF converts it too, but only inside its own handler
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        # Unexpected: logged with its traceback here (the response no longer reaches Django's handler),
        # and answered without any detail that could carry a secret.
        logger.error("unhandled error in %s", context["view"].__class__.__name__, exc_info=exc)
        body = error_body("server_error", "internal server error")
        return JsonResponse(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):  # its detail is always a dict or a list
        response.data = _validation_body(exc.detail)
    else:
        response.data = error_body(_first_code(exc.detail), str(exc.detail))
    if isinstance(exc, exceptions.AuthenticationFailed) and "WWW-Authenticate" in response:
        response["WWW-Authenticate"] += ', error="invalid_token"'  # RFC 6750 §3.1: a token was presented
    return response


def api_not_found(request, *args, **kwargs) -> JsonResponse:
    """Unknown paths under /api/v1/ answer in the same shape instead of Django's HTML page."""
    return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)


class Conflict(exceptions.APIException):
    """The request is well-formed but the current state refuses it (e.g. a gateway without a key)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "the current state of policyhub refuses this request"
    default_code = "conflict"

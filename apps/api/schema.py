"""What drf-spectacular cannot infer: the service-token security scheme and the error responses."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object

from apps.api.exceptions import PROBLEM_CONTENT_TYPE
from apps.api.serializers import ProblemSerializer


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.ServiceTokenAuthentication"
    name = "ServiceToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 (an HTTP auth scheme, not a password)
            bearer_format="ph_<prefix>_<secret>",
        )


def error_responses(*statuses: int) -> dict:
    """``responses=`` entries for the error statuses an endpoint can answer, all in the one shape."""
    return {(status, PROBLEM_CONTENT_TYPE): ProblemSerializer for status in statuses}

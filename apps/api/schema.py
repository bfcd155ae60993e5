"""What drf-spectacular cannot infer: the bearer security schemes (service token, Backstage JWT) and the
error responses. Session authentication documents itself (drf-spectacular's ``cookieAuth``)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object

from apps.api.exceptions import PROBLEM_CONTENT_TYPE
from apps.api.serializers import ProblemSerializer


class BearerSchemes(OpenApiAuthenticationExtension):
    """One header, two kinds of credential: either one will do (two alternatives in each operation)."""

    target_class = "apps.api.authentication.BearerAuthentication"
    name = ["ServiceToken", "BackstageJWT"]

    def get_security_requirement(self, auto_schema):
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema):
        return [
            build_bearer_security_scheme_object(
                header_name="Authorization",
                token_prefix="Bearer",  # noqa: S106 (an HTTP auth scheme, not a password)
                bearer_format=bearer_format,
            )
            for bearer_format in ("ph_<prefix>_<secret>", "JWT")
        ]


def error_responses(*statuses: int) -> dict:
    """``responses=`` entries for the error statuses an endpoint can answer, all in the one shape."""
    return {(status, PROBLEM_CONTENT_TYPE): ProblemSerializer for status in statuses}

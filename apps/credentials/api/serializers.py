"""Edge-token minting and exchange and the JWK Set, as the API reads and writes them."""

from rest_framework import serializers

from apps.api.serializers import ProblemSerializer
from apps.core.remote_jwt import shown
from apps.credentials.choices import ISSUED_TOKEN_TYPES, TOKEN_EXCHANGE_GRANT_TYPE, TokenType


class EdgeTokenMintSerializer(serializers.Serializer):
    gateway = serializers.CharField(max_length=100, help_text="Name of the gateway the token is for (its audience).")
    ttl_seconds = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=86_400,  # only keeps timedelta sane; the minting service enforces the real bounds
        help_text="Lifetime in seconds, at least 60 and at most the server's maximum (default: the server's).",
    )


class EdgeTokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The edge token (a JWT): send it as 'Authorization: Bearer <token>'.")
    token_type = serializers.CharField(help_text="Always 'Bearer'.")
    expires_at = serializers.DateTimeField()
    kid = serializers.CharField(help_text="The signing key; its public part is in /.well-known/jwks.json.")
    gateway = serializers.CharField()


class JsonWebKeySerializer(serializers.Serializer):
    kty = serializers.CharField(help_text="'RSA' or 'EC'.")
    kid = serializers.CharField(help_text="The 'kid' in the header of the tokens this key verifies.")
    alg = serializers.CharField(help_text="'RS256' or 'ES256'.")
    use = serializers.CharField(help_text="Always 'sig'.")
    n = serializers.CharField(required=False, help_text="RSA modulus (base64url).")
    e = serializers.CharField(required=False, help_text="RSA exponent (base64url).")
    crv = serializers.CharField(required=False, help_text="EC curve (P-256).")
    x = serializers.CharField(required=False, help_text="EC x coordinate (base64url).")
    y = serializers.CharField(required=False, help_text="EC y coordinate (base64url).")


class JsonWebKeySetSerializer(serializers.Serializer):
    keys = JsonWebKeySerializer(many=True)


class _CodedChoiceField(serializers.ChoiceField):
    """A choice whose refusal carries ``refusal_code``: the OAuth error the exchange answers with."""

    def __init__(self, *args, refusal_code: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusal_code = refusal_code

    def to_internal_value(self, data):
        if data == "" and self.allow_blank:
            return ""
        if not isinstance(data, str) or data not in self.choices:
            allowed = " or ".join(repr(choice) for choice in self.choices)
            raise serializers.ValidationError(f"{shown(data)} is not supported; use {allowed}", code=self.refusal_code)
        return super().to_internal_value(data)


class EdgeTokenExchangeSerializer(serializers.Serializer):
    """RFC 8693 §2.1, as a form (the RFC's encoding) or as JSON. An empty parameter counts as absent."""

    grant_type = _CodedChoiceField(choices=[TOKEN_EXCHANGE_GRANT_TYPE], refusal_code="unsupported_grant_type")
    subject_token = serializers.CharField(
        max_length=16_384, help_text="A JWT from a trusted issuer (Space, Buildkite or Okta): the caller's proof."
    )
    subject_token_type = _CodedChoiceField(choices=TokenType.choices, refusal_code="unsupported_token_type")
    audience = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="The gateway the edge token is for (its name)."
    )
    resource = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="The gateway's name, in place of 'audience'."
    )
    requested_token_type = _CodedChoiceField(
        choices=ISSUED_TOKEN_TYPES,
        required=False,
        allow_blank=True,
        refusal_code="unsupported_token_type",
        help_text="Default: urn:ietf:params:oauth:token-type:access_token (the edge token is a JWT either way).",
    )
    scope = serializers.CharField(
        required=False, allow_blank=True, help_text="Not supported: the roles are the identity's role mappings'."
    )
    actor_token = serializers.CharField(required=False, allow_blank=True, help_text="Not supported (no delegation).")
    actor_token_type = serializers.CharField(required=False, allow_blank=True, help_text="Not supported.")

    def validate(self, attrs: dict) -> dict:
        repeated = _repeated(self.initial_data)
        if repeated:  # RFC 8693 allows several audiences; an edge token names exactly one gateway
            code = "invalid_target" if repeated in ("audience", "resource") else "invalid_request"
            raise serializers.ValidationError({repeated: [f"give one {repeated}: an edge token is for one gateway"]},
                                              code=code)  # fmt: skip
        if attrs.get("scope"):
            raise serializers.ValidationError(
                {"scope": ["scopes are not supported: the token carries the roles its identity's role mappings grant"]},
                code="invalid_scope",
            )
        if attrs.get("actor_token") or attrs.get("actor_token_type"):
            raise serializers.ValidationError({"actor_token": ["delegation (actor_token) is not supported"]})
        audience, resource = attrs.get("audience", ""), attrs.get("resource", "")
        if not (audience or resource):
            raise serializers.ValidationError({"audience": ["name the gateway the edge token is for"]})
        if audience and resource and audience != resource:
            raise serializers.ValidationError(
                {"resource": [f"names another gateway than audience ({audience!r}): an edge token is for one"]},
                code="invalid_target",
            )
        issued = attrs.get("requested_token_type") or TokenType.ACCESS_TOKEN
        return {"subject_token": attrs["subject_token"], "gateway": audience or resource, "issued_token_type": issued}


def _repeated(data) -> str:
    """The first parameter a form gives more than once ('' when none is; JSON cannot repeat one)."""
    if not hasattr(data, "getlist"):
        return ""
    return next((name for name in data if len(data.getlist(name)) > 1), "")


class ExchangedEdgeTokenSerializer(serializers.Serializer):
    """RFC 8693 §2.2.1."""

    access_token = serializers.CharField(
        help_text="The edge token (a JWT): send it as 'Authorization: Bearer <token>'."
    )
    issued_token_type = serializers.ChoiceField(choices=ISSUED_TOKEN_TYPES)
    token_type = serializers.CharField(help_text="Always 'Bearer'.")
    expires_in = serializers.IntegerField(help_text="Seconds until the edge token expires.")


class OAuthProblemSerializer(ProblemSerializer):
    """Problem details that OAuth 2.0 clients can read too (RFC 6749 §5.2 members)."""

    error = serializers.ChoiceField(
        choices=["invalid_request", "unsupported_grant_type", "invalid_scope", "invalid_target",
                 "temporarily_unavailable"],
        help_text="The OAuth 2.0 error code (RFC 6749 §5.2, RFC 8693 §2.2.2).",
    )  # fmt: skip
    error_description = serializers.CharField(help_text="The same text as 'detail'.")

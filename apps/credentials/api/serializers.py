"""Edge-token minting and the JWK Set, as the API reads and writes them."""

from rest_framework import serializers


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

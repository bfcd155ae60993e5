"""The error shape every endpoint answers with (apps/api/exceptions.py), for the OpenAPI schema."""

from rest_framework import serializers


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, with policyhub's ``code`` and ``errors`` members."""

    type = serializers.CharField(help_text="URN naming the problem: 'urn:policyhub:problem:<code>'.")
    title = serializers.CharField(help_text="The HTTP status phrase, e.g. 'Not Found'.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="Readable explanation of this occurrence.")
    code = serializers.CharField(help_text="Stable machine-readable reason, e.g. 'not_authenticated'.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Input field name -> its problems (empty unless the input was invalid).",
    )

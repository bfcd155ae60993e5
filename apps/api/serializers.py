"""The error shape every endpoint answers with (apps/api/exceptions.py), for the OpenAPI schema."""

from rest_framework import serializers


class ApiErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable reason, e.g. 'not_authenticated'.")
    message = serializers.CharField(help_text="Readable explanation.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Input field name -> its problems (validation errors only).",
    )


class ApiErrorSerializer(serializers.Serializer):
    error = ApiErrorDetailSerializer()

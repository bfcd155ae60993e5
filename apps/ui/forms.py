"""Forms of the UI's edit pages: they parse and show; the services validate and write."""

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse_lazy
from rest_framework import serializers

from apps.core.validators import HTTP_METHODS
from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.api.access_serializers import AccessCheckRequestSerializer
from apps.policies.choices import MatchKind
from apps.policies.models import Gateway, Role
from apps.ui.explain import identity_named


class RoleMappingForm(forms.Form):
    role = forms.ModelChoiceField(queryset=Role.objects.order_by("slug"), to_field_name="slug")
    match_kind = forms.ChoiceField(choices=MatchKind.choices, label="Grant to")
    group = forms.ModelChoiceField(queryset=Group.objects.select_related("source").order_by("name"), required=False)
    identity = forms.ModelChoiceField(queryset=Identity.objects.order_by("username"), required=False)
    claim_name = forms.CharField(max_length=100, required=False)
    claim_value = forms.CharField(max_length=200, required=False)
    source = forms.ModelChoiceField(
        queryset=IdentitySource.objects.order_by("name"),
        required=False,
        empty_label="any source",
        help_text="Only identities from this source match.",
    )
    enabled = forms.BooleanField(required=False, initial=True)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class ExplainForm(forms.Form):
    """A request to explain: who, what and from where; the URL is read as POST /api/v1/decisions/check
    reads it, and the identity is looked up exactly (``identity_named``)."""

    identity = forms.CharField(
        required=False,
        max_length=300,
        help_text="Username, e-mail or subject (source:external id). Empty: an anonymous request.",
        widget=forms.TextInput(
            attrs={
                "list": "identity-options",
                "autocomplete": "off",
                "hx-get": reverse_lazy("ui:explain"),
                "hx-vals": '{"partial": "identities"}',
                "hx-trigger": "input changed delay:250ms",
                "hx-target": "#identity-options",
                "hx-swap": "innerHTML",
            }
        ),
    )
    url = forms.CharField(
        label="URL", max_length=2000, help_text="https://host/path, or host/path (port and query are ignored)."
    )
    method = forms.ChoiceField(choices=[(method, method) for method in HTTP_METHODS], initial="GET", required=False)
    client_ip = forms.GenericIPAddressField(
        label="Client IP", required=False, help_text="Empty: unknown (rules limited to networks then refuse)."
    )
    gateway = forms.ModelChoiceField(
        queryset=Gateway.objects.order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="any gateway",
        help_text="Judge as this gateway would (it knows only its own routes).",
    )

    def clean_identity(self) -> Identity | None:
        text = self.cleaned_data["identity"].strip()
        return identity_named(text=text) if text else None

    def clean_method(self) -> str:
        return self.cleaned_data["method"] or "GET"

    def clean_url(self) -> tuple[str, str]:
        """(host, path), parsed by the API's own request serializer."""
        url = self.cleaned_data["url"].strip()
        try:
            parsed = AccessCheckRequestSerializer().run_validation({"url": url if "://" in url else f"https://{url}"})
        except serializers.ValidationError as error:
            raise ValidationError(error.detail.get("url", error.detail)) from None
        return parsed["host"], parsed["path"]

"""Forms of the UI's edit pages: they parse and show; the services validate and write."""

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse_lazy
from rest_framework import serializers

from apps.core.validators import HTTP_METHODS
from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.api.access_serializers import AccessCheckRequestSerializer
from apps.policies.choices import AuthMode, Effect, IdentityHeader, MatchKind
from apps.policies.models import Application, Gateway, Role
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
    # GET first: a link without a method (bound, so no initial) shows the GET it is judged as
    method = forms.ChoiceField(
        choices=[(method, method) for method in sorted(HTTP_METHODS, key=lambda method: method != "GET")],
        initial="GET",
        required=False,
    )
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


class LinesField(forms.CharField):
    """A list of strings, one a line (blank lines dropped); the service validates each."""

    widget = forms.Textarea(attrs={"rows": 3})

    def to_python(self, value) -> list[str]:
        return [line.strip() for line in super().to_python(value).splitlines() if line.strip()]

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value


class ApplicationForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(max_length=63, help_text="Lower-case letters, digits and dashes; names it in snapshots.")
    backstage_entity_ref = forms.CharField(
        max_length=200, required=False, label="Backstage entity", help_text="[kind:][namespace/]name"
    )
    owner = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class RouteForm(forms.Form):
    application = forms.ModelChoiceField(queryset=Application.objects.order_by("name"), to_field_name="slug")
    gateway = forms.ModelChoiceField(queryset=Gateway.objects.order_by("name"), to_field_name="name")
    host = forms.CharField(max_length=253, help_text="An exact host, or *.domain for every host under it.")
    path_prefix = forms.CharField(max_length=500, initial="/", help_text="Matches on segment boundaries.")
    methods = forms.MultipleChoiceField(
        choices=[(method, method) for method in HTTP_METHODS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: every method.",
    )
    upstream_url = forms.CharField(max_length=300, label="Upstream URL")
    signed_links = forms.BooleanField(
        required=False,
        help_text="Serves artifacts: a valid time-limited signed link (GET or HEAD) stands in for the edge token.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class AccessRuleForm(forms.Form):
    effect = forms.ChoiceField(choices=Effect.choices, initial=Effect.ALLOW, help_text="Deny rules win.")
    auth_mode = forms.ChoiceField(choices=AuthMode.choices, label="Who")
    roles = forms.ModelMultipleChoiceField(
        queryset=Role.objects.order_by("slug"),
        to_field_name="slug",
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="For 'roles' rules: any one suffices.",
    )
    allowed_cidrs = LinesField(
        required=False,
        label="Networks",
        help_text="CIDRs, one a line. Allow rules: the client must be in one; deny rules: clients in them are "
        "denied. Empty: any network.",
    )
    rate_limit_per_minute = forms.IntegerField(
        required=False, label="Rate limit", help_text="Requests per identity per minute; empty: none."
    )
    identity_headers = forms.MultipleChoiceField(
        choices=IdentityHeader.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Identity facts forwarded to the upstream (X-Policyhub-* headers).",
    )
    cache_seconds = forms.IntegerField(initial=0, help_text="How long the upstream's answers may be cached.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

"""Forms of the UI's edit pages: they parse and show; the services validate and write."""

from django import forms

from apps.core.validators import HTTP_METHODS
from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.choices import AuthMode, Effect, IdentityHeader, MatchKind
from apps.policies.models import Application, Gateway, Role


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

"""Forms of the UI's edit pages: they parse and show; the services validate and write."""

from django import forms

from apps.identities.models import Group, Identity, IdentitySource
from apps.policies.choices import MatchKind
from apps.policies.models import Role


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

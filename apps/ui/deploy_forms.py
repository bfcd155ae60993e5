"""Forms of the deploy pages: they parse and show; apps/gateways/deploy_requests.py decides."""

from django import forms

from apps.gateways.selectors import deployable_gateways
from apps.policies.models import PolicySnapshot


class DeployRequestForm(forms.Form):
    snapshot = forms.ModelChoiceField(
        queryset=PolicySnapshot.objects.defer("content"), to_field_name="sha256", widget=forms.HiddenInput
    )
    gateways = forms.ModelMultipleChoiceField(
        queryset=deployable_gateways(), to_field_name="name", widget=forms.CheckboxSelectMultiple, label="Deploy to"
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        label="Why",
        help_text="Shown to the admin who decides, and kept in the audit log.",
    )


class DecisionForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Note")

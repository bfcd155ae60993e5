"""Explain: why a request would be allowed or denied, step by step, and where the gateway enforces it."""

from django.core.exceptions import ValidationError
from django.views.generic import TemplateView

from apps.policies.checks import NoSnapshot, snapshot_for_check
from apps.ui.access import READERS, HubRoleView
from apps.ui.explain import decision_explain, identity_suggestions
from apps.ui.forms import ExplainForm


class ExplainView(HubRoleView, TemplateView):
    """A GET form, so an explanation is a link to share; ``partial=identities`` (htmx) answers the
    identity field's suggestions."""

    allowed_roles = READERS
    template_name = "ui/explain.html"

    def suggesting(self) -> bool:
        return self.request.GET.get("partial") == "identities"

    def get_template_names(self):
        if self.request.htmx and self.suggesting():
            return [f"{self.template_name}#identity-options"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if self.suggesting():
            context["suggestions"] = identity_suggestions(query=self.request.GET.get("identity", ""))
            if self.request.htmx:
                return context
        form = ExplainForm(self.request.GET if "url" in self.request.GET else None)
        context["form"] = form
        if not form.is_valid():
            return context
        data = form.cleaned_data
        host, path = data["url"]
        try:
            context["explanation"] = decision_explain(
                identity=data["identity"],
                method=data["method"],
                host=host,
                path=path,
                client_ip=data["client_ip"] or None,
                gateway=data["gateway"].name if data["gateway"] else None,
                snapshot=snapshot_for_check(),
            )
        except NoSnapshot as missing:
            context["no_snapshot"] = str(missing)
        except ValidationError as refused:  # the gateway is not in the snapshot
            form.add_error(None, refused)
        return context

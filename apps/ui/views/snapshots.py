"""Building a policy snapshot from the UI: what the matrix (and every access check) reads next."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.generic import TemplateView

from apps.core.actors import Actor
from apps.policies import services
from apps.policies.selectors import policy_edited_since, snapshot_newest
from apps.ui.access import EDITORS, HubRoleView


class SnapshotBuildView(HubRoleView, TemplateView):
    """A confirmation page; posting it builds a snapshot and goes back where it was asked for
    (``next``, else ``default_next``: the deploy page mounts it with its own)."""

    allowed_roles = EDITORS
    template_name = "ui/snapshot_build.html"
    default_next = "ui:dashboard"

    def next_url(self) -> str:
        wanted = self.request.POST.get("next") or self.request.GET.get("next", "")
        safe = url_has_allowed_host_and_scheme(wanted, allowed_hosts={self.request.get_host()})
        return wanted if safe else reverse(self.default_next)

    def get_context_data(self, **kwargs):
        newest = snapshot_newest()
        edited = policy_edited_since(snapshot=newest) if newest else True
        return {**super().get_context_data(**kwargs), "newest": newest, "edited": edited, "next": self.next_url()}

    def post(self, request):
        snapshot, created = services.snapshot_build_reporting(actor=Actor.from_request(request))
        if created:
            messages.success(request, f"Built {snapshot}: access checks and the access matrix read it now.")
        else:
            messages.info(request, f"The policy is unchanged: {snapshot} is current.")
        return redirect(self.next_url())

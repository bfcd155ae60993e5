"""Deploying from the UI: what a deploy would change (who gains and loses access, per gateway, and on
demand the rendered files' diff), deploy requests and their approval (``deploy/snapshot/`` builds a
snapshot through apps/ui/views/snapshots.py).

Every action has a page of its own (GET shows what it will do, POST does it through one service),
so each URL declares the hub roles it admits and the access-matrix test walks it.
"""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import FormView, TemplateView

from apps.core.actors import Actor
from apps.gateways.deploy_requests import (
    APPROVERS,
    REQUESTERS,
    deploy_request_approve,
    deploy_request_cancel,
    deploy_request_reject,
)
from apps.gateways.deploy_requests import deploy_request_create as deploy_request_create_service
from apps.gateways.deploy_review import deploy_overview, deploy_request_list, deploy_request_review, deploy_review
from apps.gateways.dry_run import deployment_dry_run
from apps.gateways.selectors import deployable_gateways
from apps.gateways.transports import TransportError
from apps.policies.models import Gateway, PolicySnapshot
from apps.policies.selectors import snapshot_named_or_newest, snapshot_newest
from apps.ui.access import ADMINS, EDITORS, READERS, HubRoleView
from apps.ui.deploy_forms import DecisionForm, DeployRequestForm


def refusal_text(error: ValidationError) -> str:
    """A service's refusal as one sentence or a few (field-keyed errors included)."""
    return " ".join(error.messages)


class _DeployPage:
    """What a deploy page (a ``HubRoleView``) offers the visitor: requesting (editors, admins), deciding (admins)."""

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "can_request": bool(self.request.hub_roles & REQUESTERS),
            "can_decide": bool(self.request.hub_roles & APPROVERS),
            "two_person": settings.POLICYHUB_DEPLOY_TWO_PERSON,
        }


class DeployView(_DeployPage, HubRoleView, TemplateView):
    """The newest snapshot against what each gateway runs, and the form to request its deploy."""

    allowed_roles = READERS
    template_name = "ui/deploy/overview.html"

    def get_context_data(self, **kwargs):
        overview = deploy_overview()
        form = None
        if overview.candidate is not None and overview.deployable:
            form = DeployRequestForm(initial={"snapshot": overview.candidate.sha256, "gateways": overview.deployable})
        return {**super().get_context_data(**kwargs), "overview": overview, "form": form}


class DeployRequestCreateView(_DeployPage, HubRoleView, FormView):
    """Ask for a snapshot (the newest, or an older one: a rollback) to be deployed, seeing what it changes."""

    allowed_roles = EDITORS
    form_class = DeployRequestForm
    template_name = "ui/deploy/request_form.html"

    def _asked_for(self) -> tuple[PolicySnapshot | None, list[Gateway]]:
        """The snapshot and gateways the query string names (a rollback link names both); by
        default the newest snapshot and every deployable gateway."""
        snapshot = snapshot_named_or_newest(sha256=self.request.GET.get("snapshot"))
        gateways = deployable_gateways()
        if names := self.request.GET.getlist("gateways"):
            gateways = gateways.filter(name__in=names)
        return snapshot, list(gateways)

    def get_initial(self):
        snapshot, gateways = self._asked_for()
        return {"snapshot": snapshot.sha256 if snapshot else None, "gateways": gateways}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context["form"]
        if form.is_bound and form.is_valid():
            snapshot, gateways = form.cleaned_data["snapshot"], list(form.cleaned_data["gateways"])
        else:
            snapshot, gateways = self._asked_for()
        newest = snapshot_newest()
        return {
            **context,
            "snapshot": snapshot,
            "rollback": snapshot is not None and newest is not None and snapshot.pk != newest.pk,
            "reviews": deploy_review(snapshot=snapshot, gateways=gateways) if snapshot and gateways else [],
        }

    def form_valid(self, form):
        try:
            created = deploy_request_create_service(
                snapshot=form.cleaned_data["snapshot"],
                gateways=list(form.cleaned_data["gateways"]),
                reason=form.cleaned_data["reason"],
                user=self.request.user,
                actor=Actor.from_request(self.request),
            )
        except ValidationError as error:
            form.add_error(None, refusal_text(error))
            return self.form_invalid(form)
        messages.success(self.request, "Deploy requested: an admin approves or rejects it here.")
        return redirect("ui:deploy_request", pk=created.pk)


class DeployRequestView(_DeployPage, HubRoleView, TemplateView):
    """One request: what it changes, its state, and the decisions the visitor may take."""

    allowed_roles = READERS
    template_name = "ui/deploy/request.html"

    def get_context_data(self, **kwargs):
        deploy_request = get_object_or_404(deploy_request_list(), pk=kwargs["pk"])
        return {
            **super().get_context_data(**kwargs),
            "deploy_request": deploy_request,
            "reviews": deploy_request_review(deploy_request=deploy_request),
            "deployments": deploy_request.deployments.select_related("gateway").order_by("gateway__name"),
            "decision_form": DecisionForm(),
            "own_request": deploy_request.requested_by_id == self.request.user.pk,
        }


class _DecisionView(HubRoleView, FormView):
    """A decision on a request: GET asks for confirmation, POST takes it through ``decide``."""

    allowed_roles = ADMINS
    form_class = DecisionForm
    template_name = "ui/deploy/decision.html"
    verb = ""  # approve | reject | cancel
    done = ""

    def dispatch(self, request, *args, **kwargs):
        self.deploy_request = get_object_or_404(deploy_request_list(), pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "deploy_request": self.deploy_request, "verb": self.verb}

    def decide(self, **kwargs):
        raise NotImplementedError

    def form_valid(self, form):
        try:
            self.decide(
                deploy_request=self.deploy_request,
                user=self.request.user,
                actor=Actor.from_request(self.request),
                note=form.cleaned_data["note"],
            )
        except (ValidationError, PermissionDenied) as error:
            text = refusal_text(error) if isinstance(error, ValidationError) else str(error)
            messages.error(self.request, f"Not {self.done}: {text}")
        else:
            messages.success(self.request, f"Deploy request {self.deploy_request.pk} {self.done}.")
        return redirect("ui:deploy_request", pk=self.deploy_request.pk)


class DeployRequestApproveView(_DecisionView):
    verb, done = "approve", "approved"

    def decide(self, **kwargs):
        deploy_request_approve(**kwargs)


class DeployRequestRejectView(_DecisionView):
    verb, done = "reject", "rejected"

    def decide(self, **kwargs):
        deploy_request_reject(**kwargs)


class DeployRequestCancelView(_DecisionView):
    allowed_roles = EDITORS
    verb, done = "cancel", "cancelled"

    def decide(self, **kwargs):
        deploy_request_cancel(**kwargs)


class ConfigDiffView(_DeployPage, HubRoleView, TemplateView):
    """The rendered files' diff against the gateway's live release, validated on the target
    (``deployment_dry_run``): slow, so it runs when asked (POST), never when the page opens."""

    allowed_roles = EDITORS
    template_name = "ui/deploy/config_diff.html"

    def get_context_data(self, **kwargs):
        gateway = get_object_or_404(Gateway, pk=kwargs["pk"])
        wanted = self.request.POST.get("snapshot") or self.request.GET.get("snapshot")
        return {
            **super().get_context_data(**kwargs),
            "gateway": gateway,
            "snapshot": snapshot_named_or_newest(sha256=wanted),
        }

    def post(self, request, *args, **kwargs):
        context = self.get_context_data(**kwargs)
        try:
            context["dry_run"] = deployment_dry_run(
                gateway=context["gateway"], actor=Actor.from_request(request), snapshot=context["snapshot"]
            )
        except (ValidationError, TransportError) as error:
            context["problem"] = refusal_text(error) if isinstance(error, ValidationError) else str(error)
        template = f"{self.template_name}#result" if request.htmx else self.template_name
        return self.response_class(request, template, context)

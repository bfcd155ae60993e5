"""Editing objects in the UI: form pages that write through the services, with the API's optimistic
concurrency.

Each edit or delete form carries the ETag the object had when it was opened: the API's tag
(apps/api/concurrency.py), the SHA-256 of its API representation, so the UI and the API agree on
what "changed" means. Saving is checked against the row locked for the write; an object changed
since it was opened is not overwritten: the form comes back with what was typed, saying who changed
it and when (the newest audit event on it). Validation errors from the services' ``full_clean``
appear on their fields.

A page subclasses ``ObjectCreateView`` (``ObjectCreateUnderView`` for a parent the URL names),
``ObjectEditView`` or ``ObjectDeleteView`` and names its model, form, API serializer and the service
calls (``object_create`` / ``object_update`` / ``object_delete``), each given the acting user as an
``Actor``.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.timesince import timesince
from django.views.generic import FormView

from apps.api.concurrency import etag_for
from apps.audit.models import AuditEvent
from apps.core.actors import Actor
from apps.ui.access import EDITORS, HubRoleView


def object_etag(serializer_class, instance) -> str:
    return etag_for(serializer_class(instance).data)


def last_change(instance) -> AuditEvent | None:
    """The newest audit event about ``instance``."""
    return (
        AuditEvent.objects.filter(object_type=instance._meta.label_lower, object_id=str(instance.pk))
        .order_by("-id")
        .first()
    )


def changed_since_message(instance) -> str:
    event = last_change(instance)
    who = f"by {event.actor} {timesince(event.occurred_at)} ago " if event else ""
    return (
        f"{instance} was changed {who}since you opened it. Nothing was saved: the form shows what you "
        "typed, the page below what it is now. Reload to start from the current version."
    )


class ConcurrencyForm(forms.Form):
    """The hidden field an edit or delete form carries: the object's ETag as opened."""

    etag = forms.CharField(widget=forms.HiddenInput)


def _form_errors_from(form: forms.BaseForm, error: ValidationError) -> None:
    """A service's ValidationError on the form: per field where it names one the form has."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


class _ObjectFormView(HubRoleView, FormView):
    allowed_roles = EDITORS
    model = None
    serializer_class = None  # the API serializer: its representation is what the ETag covers
    success_url_name = ""  # a ui: URL name without arguments; override ``success_url_for`` otherwise
    done = "Saved"  # the message after a write: "<done> <object>."
    template_name = "ui/edit.html"

    def actor(self) -> Actor:
        return Actor.from_request(self.request)

    def success_url_for(self, instance) -> str:
        return reverse(self.success_url_name)

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "object": self.object,
            "model_name": self.model._meta.verbose_name,
        }

    def write(self, form) -> object:
        """Call the service; raises ValidationError with what it refused."""
        raise NotImplementedError

    def form_valid(self, form):
        try:
            written = self.write(form)
        except ValidationError as error:
            _form_errors_from(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"{self.done} {written}.")
        return redirect(self.success_url_for(written))


class ObjectCreateView(_ObjectFormView):
    done = "Created"
    object = None

    def object_create(self, *, data: dict, actor: Actor):
        raise NotImplementedError

    def write(self, form):
        return self.object_create(data=form.cleaned_data, actor=self.actor())


class ObjectCreateUnderView(ObjectCreateView):
    """A create form under the parent object the URL names (its ``pk``), kept as ``self.parent``."""

    parent_model = None

    def dispatch(self, request, *args, **kwargs):
        self.parent = get_object_or_404(self.parent_model, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)


class ObjectEditView(_ObjectFormView):
    """An edit form that refuses to overwrite changes made since it was opened; it links to the
    object's delete page, the ui: URL ``delete_url_name`` (taking the object's pk)."""

    delete_url_name = ""

    def get_context_data(self, **kwargs):
        delete_url = reverse(self.delete_url_name, args=[self.object.pk]) if self.delete_url_name else ""
        return {**super().get_context_data(**kwargs), "delete_url": delete_url}

    def object_update(self, *, instance, data: dict, actor: Actor):
        raise NotImplementedError

    def dispatch(self, request, *args, **kwargs):
        self.object = get_object_or_404(self.model, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_form_class(self):
        return type(f"{self.form_class.__name__}WithETag", (self.form_class, ConcurrencyForm), {})

    def get_initial(self):
        return {**self.initial_from(self.object), "etag": object_etag(self.serializer_class, self.object)}

    def initial_from(self, instance) -> dict:
        return {name: getattr(instance, name) for name in self.form_class.base_fields if hasattr(instance, name)}

    def write(self, form):
        data = {name: value for name, value in form.cleaned_data.items() if name != "etag"}
        with transaction.atomic():
            locked = self.model.objects.select_for_update(of=("self",)).get(pk=self.object.pk)
            if object_etag(self.serializer_class, locked) != form.cleaned_data["etag"]:
                self.object = locked
                raise ValidationError(changed_since_message(locked))
            return self.object_update(instance=locked, data=data, actor=self.actor())


class ObjectDeleteView(ObjectEditView):
    """A confirmation page; deleting an object changed since it was opened is refused the same way."""

    template_name = "ui/delete.html"
    done = "Deleted"

    def get_form_class(self):
        return ConcurrencyForm  # whatever form the page's edit view uses: only the ETag is posted

    def initial_from(self, instance) -> dict:
        return {}

    def object_delete(self, *, instance, actor: Actor) -> None:
        raise NotImplementedError

    def object_update(self, *, instance, data: dict, actor: Actor):
        try:
            self.object_delete(instance=instance, actor=actor)
        except ProtectedError as refused:  # on_delete=PROTECT: what still refers to it must go first
            referrers = sorted(str(referrer) for referrer in refused.protected_objects)
            shown = ", ".join(referrers[:5]) + (", …" if len(referrers) > 5 else "")
            raise ValidationError(
                f"{instance} is still used by {len(referrers)} other object(s) ({shown}): change or delete those first."
            ) from None
        return instance
